-- Wireshark / tshark dissector for dataplane's mirror copies to an analyzer
-- (SPEC §9; the layout is docs/mirroring.md §3): a 32-byte metadata header in UDP,
-- then the copied frame, dissected as Ethernet.
--
--   tshark -X lua_script:tools/dataplane_mirror.lua -r mon.pcap \
--          -T fields -e dpmirror.direction -e dpmirror.in_port -e dpmirror.seq
--
-- Found on any UDP port by its magic (0x444D) and version (1), and bound to the port of
-- the preference dpmirror.udp_port (default 8099; 0: by the magic only).

local MAGIC, VERSION, HLEN = 0x444D, 1, 32
local NONE = { [0xFFFF] = "none" }

local dpmirror = Proto("dpmirror", "dataplane mirror copy")
local f = dpmirror.fields
f.magic = ProtoField.uint16("dpmirror.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("dpmirror.version", "Version", base.DEC)
f.direction = ProtoField.uint8("dpmirror.direction", "Direction", base.DEC,
                               { [1] = "rx", [2] = "tx" })
f.in_port = ProtoField.uint16("dpmirror.in_port", "Ingress port", base.DEC)
f.out_port = ProtoField.uint16("dpmirror.out_port", "Egress port", base.DEC, NONE)
f.vrf = ProtoField.uint16("dpmirror.vrf", "VRF", base.DEC, NONE)
f.worker = ProtoField.uint16("dpmirror.worker", "Worker", base.DEC)
f.sample = ProtoField.uint32("dpmirror.sample", "Sample (1 in N)", base.DEC)
f.orig_len = ProtoField.uint32("dpmirror.orig_len", "Original length", base.DEC)
f.seq = ProtoField.uint32("dpmirror.seq", "Sequence", base.DEC)
f.timestamp = ProtoField.uint64("dpmirror.timestamp", "Timestamp (ns since the epoch)",
                                base.DEC)
f.time = ProtoField.absolute_time("dpmirror.time", "Time", base.UTC)

dpmirror.prefs.udp_port = Pref.uint("UDP port", 8099,
                                    "The analyzer's udp_port (0: found by its magic only)")

local eth = Dissector.get("eth_withoutfcs")

local function is_mirror(tvb)
    return tvb:len() >= HLEN and tvb(0, 2):uint() == MAGIC and tvb(2, 1):uint() == VERSION
end

function dpmirror.dissector(tvb, pinfo, tree)
    if not is_mirror(tvb) then
        return 0
    end
    pinfo.cols.protocol = "DPMIRROR"
    local t = tree:add(dpmirror, tvb(0, HLEN))
    t:add(f.magic, tvb(0, 2))
    t:add(f.version, tvb(2, 1))
    t:add(f.direction, tvb(3, 1))
    t:add(f.in_port, tvb(4, 2))
    t:add(f.out_port, tvb(6, 2))
    t:add(f.vrf, tvb(8, 2))
    t:add(f.worker, tvb(10, 2))
    t:add(f.sample, tvb(12, 4))
    t:add(f.orig_len, tvb(16, 4))
    t:add(f.seq, tvb(20, 4))
    t:add(f.timestamp, tvb(24, 8))
    local ns = tvb(24, 8):uint64()
    t:add(f.time, tvb(24, 8), NSTime.new((ns / 1000000000):tonumber(),
                                         (ns % 1000000000):tonumber()))
    local dir = ({ [1] = "rx", [2] = "tx" })[tvb(3, 1):uint()] or "?"
    local info = string.format("mirror %s in %d seq %d: ", dir, tvb(4, 2):uint(),
                               tvb(20, 4):uint())
    if tvb:len() > HLEN then
        eth:call(tvb(HLEN):tvb(), pinfo, tree)
    end
    pinfo.cols.info:prepend(info)
    return tvb:len()
end

dpmirror:register_heuristic("udp", function(tvb, pinfo, tree)
    if not is_mirror(tvb) then
        return false
    end
    dpmirror.dissector(tvb, pinfo, tree)
    return true
end)

local bound = 0
local function bind_port()
    local udp = DissectorTable.get("udp.port")
    if bound ~= 0 then
        udp:remove(bound, dpmirror)
    end
    bound = dpmirror.prefs.udp_port
    if bound ~= 0 then
        udp:add(bound, dpmirror)
    end
end

function dpmirror.prefs_changed()
    bind_port()
end

bind_port()
