"""The CLI's consoles. soft_wrap: never break a message across lines (rich wraps at 80
columns off a tty), so every error stays one greppable line."""
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
