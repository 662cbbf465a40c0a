"""Reference of pyx/mpls_output.pxd: an attachment circuit's frame into its pseudowire."""
# docs/mpls.md §9.1. The swap's new labels are written by mpls_input.process() and the
# pop-xconnect's frame cut there too (the reference does both in one pass over the
# stack); choosing the next hop of a swap or pseudowire is ReferenceForwarder.via_nexthop
# (pipeline.py).
from __future__ import annotations

from typing import Sequence

from .. import hashing
from .mpls_input import Lse, _need
from .push import PushResult, build_stack

PW_TTL = 255                        # transport and PW labels pushed over a frame
FAT_TTL = 1                         # RFC 6391
CONTROL_WORD = bytes(4)             # RFC 4385 §3 / RFC 4448 §4.6: nibble 0, flags 0, seq 0


def pw_encap(frame: bytes, transport: Sequence[int], pw_label: int, *, fat: bool,
             control_word: bool, h: int, entropy: bool = False, erld: int = 8) -> PushResult:
    """§9.1: [transport][ELI EL if entropy][PW label][FAT label if fat][CW if control_word]
    frame. TTL 255 on transport and PW labels, FAT TTL 1, TC 0; FAT = EL =
    entropy_label(h), h the inner flow hash. A frame under 14 bytes is `truncated`."""
    _need(frame, 0, 14)
    label = hashing.entropy_label(h)
    service = [pw_label] + ([label] if fat else [])
    pushed = build_stack(transport, service, tc=0, ttl=PW_TTL, entropy=entropy, erld=erld,
                         el=label)
    if fat:                                     # the bottom entry: TTL 1, not 255
        last = pushed.stack[-1]
        pushed.stack[-1] = Lse(last.label, last.tc, 1, FAT_TTL)
    return PushResult(pushed.pack() + (CONTROL_WORD if control_word else b"") + frame,
                      pushed.el_readable)
