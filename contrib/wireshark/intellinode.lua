-- IntelliNode wire formats for Wireshark / tshark (4.0 or later).
--
--   tshark -X lua_script:contrib/wireshark/intellinode.lua -r capture.pcap -V
--   wireshark -X lua_script:contrib/wireshark/intellinode.lua capture.pcap
--
-- or copy this file into Wireshark's personal Lua plugins folder
-- (Help > About Wireshark > Folders, "Personal Lua Plugins").
--
-- Written from docs/wire-format.md; section numbers below refer to it.
--
--   intellinode.stamp   §1  pktgen latency stamp (the frame's last 16 bytes)
--   intellinode.tf      §5  token feature TLV: IPv4 option 0x9E (or 0x1E),
--                           IPv6 Hop-by-Hop option 0x1E
--   intellinode.geneve  §7  Geneve options of class 0xFF49 (UDP 6081)
--   intellinode.incp    §3  control protocol cleartext header (UDP 7470)
--   intellinode.probe   §4  path probe (UDP 7471)
--   intellinode.inud    §8  UDP inference datagrams (emulator serve --udp)
--
-- How each one is hooked in, and why:
--
-- * IPv4 option: Wireshark's IPv4 dissector hands every option whose type
--   is in its "ip.option" dissector table to that table's dissector, so
--   the TLV is registered there (0x9E, and 0x1E which receivers also
--   accept) and shows up inside the IPv4 header's Options subtree. But it
--   does so only for options it can frame itself: an option of our type
--   with no length byte, a length byte of 0 or 1, or a length running past
--   the option area never reaches the table (Wireshark shows its own
--   warning instead), nor does anything after an option Wireshark's
--   option parser gives up on (a Router Alert of the wrong length, say).
--   So a postdissector also walks every IPv4 header's option bytes itself,
--   exactly as the receiver does (§5.5, classifier::token_feature_tlv::
--   scan_ipv4): it reports what the table never saw (token_tlv.truncated,
--   token_tlv.option_framing, a TLV behind an option Wireshark refused)
--   and skips the TLVs the table already decoded, so nothing is reported
--   twice.
-- * IPv6 Hop-by-Hop option: Wireshark 4.0 has no dissector table for
--   IPv6 options (it prints 0x1E as "Experimental" with raw bytes), so the
--   postdissector finds every Hop-by-Hop header through the field
--   ipv6.hopopts.nxt and walks its options itself, as the receiver does
--   (classifier::token_feature_tlv::scan_ipv6). The TLV's tree comes
--   after the protocol trees but its bytes are those inside the IPv6
--   header.
-- * Geneve: Wireshark 4.0's Geneve dissector has no table keyed by
--   option class (it decodes a few classes itself and shows the rest as
--   "Unknown Option Data"), so the same postdissector finds every Geneve
--   header through the field geneve.version and walks the options area
--   itself (tensor::geneve::GeneveOptions). The AES-CMAC tag is shown,
--   not verified: that needs the key, which a capture does not have.
-- * INCP and INPR are plain UDP protocols: dissectors on their default
--   ports, changeable in the protocol preferences. Both check their magic
--   and give the payload back to Wireshark when it does not match, so a
--   foreign protocol sharing the port is not mislabelled.
-- * INUD has no default port (emulator serve --udp takes any address), so
--   it is a heuristic UDP dissector keyed on its magic "INUD"; it is also
--   offered in Decode As (UDP port).
-- * The latency stamp sits after the IP datagram, in what Wireshark shows
--   as Ethernet padding or trailer, so the postdissector looks at the
--   frame's last 16 bytes and decodes them when they start with "INLT",
--   which is all pktgen's receiver checks too.
--
-- INCP's payload is encrypted (XChaCha20-Poly1305): the message kind
-- (PATH_STATE, POLICY, ...) and every record are inside the ciphertext and
-- cannot be shown without the peer's key. What the cleartext header does
-- say is the peer (key_id), the sequence number and the direction (the
-- REPLY flag).
--
-- Only arithmetic (no bit32, no bitwise operators) so the same file runs
-- under Lua 5.2 (Wireshark 4.0/4.2) and 5.4 (4.4 and later).

local TF_IPV4_TYPE = 0x9E
local TF_IPV4_TYPE_UNCOPIED = 0x1E
local TF_HBH_TYPE = 0x1E
local TF_VALUE_LEN = 10
local GENEVE_CLASS = 0xFF49
local INCP_DEFAULT_PORT = 7470
local INPR_DEFAULT_PORT = 7471

-- x // 2^n and x % 2^n without Lua 5.3's // operator; math.floor keeps the
-- results integers under 5.4, where 2^n is a float.
local function shr(x, n) return math.floor(x / 2 ^ n) end
local function low(x, n) return math.floor(x % 2 ^ n) end

---------------------------------------------------------------------------
-- §5 Token feature TLV
---------------------------------------------------------------------------

local p_tf = Proto("intellinode.tf", "IntelliNode Token Feature TLV")

local task_names = {
    [0] = "immediate control", [1] = "chat", [2] = "code generation",
    [3] = "summarisation", [4] = "complex reasoning",
}
for code = 5, 15 do task_names[code] = "reserved" end
local urgency_names = {
    [0] = "background", [1] = "normal", [2] = "interactive", [3] = "immediate",
}
local carrier_names = { [4] = "IPv4 option", [6] = "IPv6 Hop-by-Hop option" }

local tf = {
    carrier = ProtoField.uint8("intellinode.tf.carrier", "Carrier", base.DEC, carrier_names),
    type = ProtoField.uint8("intellinode.tf.type", "Type", base.HEX),
    length = ProtoField.uint8("intellinode.tf.length", "Length", base.DEC),
    flags = ProtoField.uint16("intellinode.tf.flags", "D and Unassigned", base.HEX),
    directed = ProtoField.bool("intellinode.tf.directed", "D (directed)", 16, nil, 0x8000),
    unassigned = ProtoField.uint16("intellinode.tf.unassigned", "Unassigned", base.HEX, nil, 0x7FFF),
    id = ProtoField.uint64("intellinode.tf.id", "Token feature ID", base.HEX),
    version = ProtoField.uint8("intellinode.tf.version", "Layout version", base.DEC, nil, 0xF0),
    prompt_code = ProtoField.uint16("intellinode.tf.prompt_code", "Prompt tokens code", base.HEX, nil, 0x0FFF),
    prompt_tokens = ProtoField.uint32("intellinode.tf.prompt_tokens", "Estimated prompt tokens", base.DEC),
    output_code = ProtoField.uint16("intellinode.tf.output_code", "Output tokens code", base.HEX, nil, 0xFFF0),
    output_tokens = ProtoField.uint32("intellinode.tf.output_tokens", "Expected output tokens", base.DEC),
    total_tokens = ProtoField.uint32("intellinode.tf.total_tokens", "Prompt + output tokens", base.DEC),
    task = ProtoField.uint8("intellinode.tf.task", "Task type", base.DEC, task_names, 0x0F),
    urgency = ProtoField.uint8("intellinode.tf.urgency", "Urgency", base.DEC, urgency_names, 0xC0),
    explicit = ProtoField.bool("intellinode.tf.explicit_urgency", "X (urgency set by the agent)", 8,
        { "explicit", "inferred from the task" }, 0x20),
    reserved = ProtoField.uint32("intellinode.tf.reserved", "Reserved", base.HEX, nil, 0x1FFFFFFF),
    prefix_code = ProtoField.uint32("intellinode.tf.prefix_code", "Shared-prefix tokens code", base.HEX, nil, 0x1FFE0000),
    prefix_tokens = ProtoField.uint32("intellinode.tf.prefix_tokens", "Shared-prefix tokens", base.DEC),
    prefix_hash = ProtoField.uint32("intellinode.tf.prefix_hash", "Shared-prefix hash", base.HEX, nil, 0x0001FFFF),
    value = ProtoField.bytes("intellinode.tf.value", "Value"),
    unframed = ProtoField.uint8("intellinode.tf.unframed_type",
        "Type of an option that cannot be framed", base.HEX),
}
p_tf.fields = tf

-- Named after the receiver's counters (TlvMalformed::code) so a count in
-- the stats can be matched to packets in a capture.
local function tf_expert(code)
    return ProtoExpert.new("intellinode.tf." .. code, "token_tlv." .. code,
        expert.group.MALFORMED, expert.severity.ERROR)
end
local tf_ex = {
    bad_length = tf_expert("bad_length"),
    truncated = tf_expert("truncated"),
    unknown_version = tf_expert("unknown_version"),
    reserved_task = tf_expert("reserved_task"),
    reserved_bits = tf_expert("reserved_bits"),
    bad_prefix = tf_expert("bad_prefix"),
    duplicate = tf_expert("duplicate"),
    option_framing = tf_expert("option_framing"),
}
p_tf.experts = tf_ex

-- §5.2 token code: 4-bit exponent, 8-bit mantissa.
local function token_count(code)
    local e, m = shr(code, 8), low(code, 8)
    if e == 0 then return m end
    return math.floor((256 + m) * 2 ^ (e - 1))
end

-- Decodes one TLV. `opt` spans the whole option as the carrier frames it
-- (type, length, value) or, for an option that cannot be framed, from its
-- type byte to the end of the option area; `carrier` is 4 or 6. In IPv4
-- the length byte counts type and length too (12), in IPv6 only the value
-- (10), which is the same 10 value octets either way (§5.3, §5.4). §5.5:
-- an option that cannot be framed is token_tlv.truncated whatever its
-- length says; only a framed one can be token_tlv.bad_length. Malformed
-- TLVs are shown but not decoded past the point the receiver stops
-- trusting them.
local function dissect_tf(opt, tree, carrier, duplicate)
    local label = carrier == 4 and "IPv4 option" or "IPv6 Hop-by-Hop option"
    local kind = opt(0, 1):uint()
    local t = tree:add(p_tf, opt)
    t:add(tf.carrier, opt(0, 1), carrier):set_generated()
    t:add(tf.type, opt(0, 1))
    if duplicate then
        t:add_proto_expert_info(tf_ex.duplicate,
            "token_tlv.duplicate: a second TLV; the receiver ignores both")
    end
    local function truncated(why)
        t:add_proto_expert_info(tf_ex.truncated, "token_tlv.truncated: " .. why)
        if opt:len() > 2 then t:add(tf.value, opt(2)) end
        t:set_text(string.format("IntelliNode Token Feature TLV (%s 0x%02X), truncated", label, kind))
    end
    if opt:len() < 2 then
        truncated("the type byte is the last byte of the option area (no length byte)")
        return
    end
    t:add(tf.length, opt(1, 1))
    local len = opt(1, 1):uint()
    if carrier == 4 and len < 2 then
        truncated(string.format("IPv4 length byte %d; it counts the type and length bytes, so at least 2", len))
        return
    end
    local framed = carrier == 4 and len or 2 + len
    if framed > opt:len() then
        truncated(string.format("length %d runs past the option area (%d bytes from the type byte to its end)",
            len, opt:len()))
        return
    end
    local value_len = carrier == 4 and len - 2 or len
    if value_len ~= TF_VALUE_LEN then
        local want = carrier == 4 and 12 or 10
        t:add_proto_expert_info(tf_ex.bad_length, string.format(
            "token_tlv.bad_length: length %d, must be %d in the %s", len, want, label))
        if framed > 2 then t:add(tf.value, opt(2, framed - 2)) end
        t:set_text(string.format("IntelliNode Token Feature TLV (%s 0x%02X), bad length %d",
            label, kind, len))
        return
    end

    local flags = t:add(tf.flags, opt(2, 2))
    flags:add(tf.directed, opt(2, 2))
    flags:add(tf.unassigned, opt(2, 2))
    local directed = opt(2, 1):uint() >= 0x80

    local idr = opt(4, 8)
    local idt = t:add(tf.id, idr)
    local b = {}
    for i = 0, 7 do b[i] = idr(i, 1):uint() end
    local version = shr(b[0], 4)
    idt:add(tf.version, idr(0, 1))
    if version ~= 1 and version ~= 2 then
        idt:add_proto_expert_info(tf_ex.unknown_version, string.format(
            "token_tlv.unknown_version: layout version %d; only 1 and 2 are defined, the ID is rejected",
            version))
        t:set_text(string.format("IntelliNode Token Feature TLV (%s 0x%02X), unknown layout version %d",
            label, kind, version))
        return
    end
    local prompt_code = low(b[0], 4) * 256 + b[1]
    local output_code = b[2] * 16 + shr(b[3], 4)
    local task = low(b[3], 4)
    local urgency = shr(b[4], 6)
    -- Bit 29 alone (0x20 of byte 4); bits 28-24 below it are reserved or
    -- the prefix code.
    local explicit = low(shr(b[4], 5), 1) == 1
    local reserved = ((low(b[4], 5) * 256 + b[5]) * 256 + b[6]) * 256 + b[7]
    local prompt, output = token_count(prompt_code), token_count(output_code)

    idt:add(tf.prompt_code, idr(0, 2))
    idt:add(tf.prompt_tokens, idr(0, 2), prompt):set_generated()
    idt:add(tf.output_code, idr(2, 2))
    idt:add(tf.output_tokens, idr(2, 2), output):set_generated()
    idt:add(tf.total_tokens, idr(0, 4), prompt + output):set_generated()
    local task_item = idt:add(tf.task, idr(3, 1))
    idt:add(tf.urgency, idr(4, 1))
    idt:add(tf.explicit, idr(4, 1))
    if task > 4 then
        task_item:add_proto_expert_info(tf_ex.reserved_task, string.format(
            "token_tlv.reserved_task: task code %d is reserved, the ID is rejected", task))
    end
    -- Version 2 (wire-format §5.2a): bits 28-17 the shared prefix's token
    -- code, bits 16-0 its hash; both 0 is no prefix.
    local prefix_text = ""
    if version == 1 then
        local res_item = idt:add(tf.reserved, idr(4, 4))
        if reserved ~= 0 then
            res_item:add_proto_expert_info(tf_ex.reserved_bits,
                "token_tlv.reserved_bits: must be 0 in version 1, the ID is rejected")
        end
    else
        local prefix_code = shr(reserved, 17)
        local hash = low(reserved, 17)
        idt:add(tf.prefix_code, idr(4, 4))
        local tokens = token_count(prefix_code)
        idt:add(tf.prefix_tokens, idr(4, 2), tokens):set_generated()
        local hash_item = idt:add(tf.prefix_hash, idr(4, 4))
        if (prefix_code == 0) ~= (hash == 0) or prefix_code > prompt_code then
            hash_item:add_proto_expert_info(tf_ex.bad_prefix,
                "token_tlv.bad_prefix: a hash without tokens, tokens without a hash, or more than the prompt; the ID is rejected")
        elseif hash ~= 0 then
            prefix_text = string.format(", shared prefix %d tokens (hash 0x%05X)", tokens, hash)
        end
    end

    t:set_text(string.format(
        "IntelliNode Token Feature TLV (%s 0x%02X): prompt %d, output %d tokens, %s, urgency %s%s%s%s",
        label, kind, prompt, output, task_names[task], urgency_names[urgency],
        explicit and " (explicit)" or "", directed and ", directed" or "", prefix_text))
end

-- §5.5: an option of another type that cannot be framed, before any option
-- of ours. The receiver stops there (a TLV could hide behind it) and
-- counts token_tlv.option_framing; `rest` runs from its type byte to the
-- end of the option area.
local function option_framing(rest, tree, carrier, why)
    local t = tree:add(p_tf, rest)
    t:add(tf.carrier, rest(0, 1), carrier):set_generated()
    t:add(tf.unframed, rest(0, 1))
    t:add_proto_expert_info(tf_ex.option_framing, string.format(
        "token_tlv.option_framing: option 0x%02X %s; the receiver stops its scan before any token feature TLV",
        rest(0, 1):uint(), why))
    t:set_text(string.format("IntelliNode Token Feature TLV scan (%s area): option 0x%02X cannot be framed",
        carrier == 4 and "IPv4 option" or "IPv6 Hop-by-Hop", rest(0, 1):uint()))
end

-- IPv4 option area of the IPv4 header whose hdr_len field was added last:
-- while the IPv4 dissector runs our option dissector, that is the header
-- the option belongs to (inner headers of a tunnel come later).
local f_ip_hdr_len = Field.new("ip.hdr_len")

-- Whether an earlier option of the same IPv4 header is a TLV too. The
-- receiver calls a second TLV a duplicate and ignores both, and Wireshark
-- hands options over one at a time, so look back from this one.
local function ipv4_earlier_tlv(opt_tvb)
    local all = { f_ip_hdr_len() }
    local hdr = all[#all]
    if hdr == nil or hdr.source == nil then return false end
    local src, start = hdr.source, hdr.offset
    local this = opt_tvb:offset()
    local off = start + 20
    while off < this and off < src:len() do
        local kind = src(off, 1):uint()
        if kind == 0 then return false end
        if kind == 1 then
            off = off + 1
        else
            if kind == TF_IPV4_TYPE or kind == TF_IPV4_TYPE_UNCOPIED then return true end
            if off + 1 >= src:len() then return false end
            local l = src(off + 1, 1):uint()
            if l < 2 then return false end
            off = off + l
        end
    end
    return false
end

-- The IPv4 options the "ip.option" table decoded in the frame being
-- dissected, by offset, so the postdissector's walk does not decode them
-- again. Emptied by the postdissector, which runs last for every frame.
local ipv4_decoded = { frame = nil, at = {} }

function p_tf.dissector(tvb, pinfo, tree)
    if ipv4_decoded.frame ~= pinfo.number then
        ipv4_decoded.frame, ipv4_decoded.at = pinfo.number, {}
    end
    ipv4_decoded.at[tvb:offset()] = true
    dissect_tf(tvb(), tree, 4, ipv4_earlier_tlv(tvb))
    return tvb:len()
end

local ip_option_table = DissectorTable.get("ip.option")
ip_option_table:add(TF_IPV4_TYPE, p_tf)
ip_option_table:add(TF_IPV4_TYPE_UNCOPIED, p_tf)

local function is_ours_v4(kind) return kind == TF_IPV4_TYPE or kind == TF_IPV4_TYPE_UNCOPIED end

-- §5.5 for one IPv4 header at `hdr` of `src` (IHL > 5), like scan_ipv4:
-- End of Option List (0) ends the scan, No Operation (1) is one byte,
-- every other option is type, length (counting type and length), data.
-- An option that cannot be framed (its type byte last in the area, a
-- length byte of 0 or 1, or a length past the area) ends the scan too:
-- ours is token_tlv.truncated, another type before any of ours is
-- token_tlv.option_framing. A second option of ours is token_tlv.duplicate
-- whatever either gave. Framed TLVs the "ip.option" table already decoded
-- (with their own bad_length, ID and duplicate checks) are skipped here.
local function walk_ipv4(src, hdr, tree, decoded)
    if hdr + 20 > src:len() then return end
    local first = src(hdr, 1):uint()
    if shr(first, 4) ~= 4 then return end
    local stop = hdr + low(first, 4) * 4
    if stop <= hdr + 20 or stop > src:len() then return end
    local off, found = hdr + 20, false
    while off < stop do
        local kind = src(off, 1):uint()
        if kind == 0 then return end
        if kind == 1 then
            off = off + 1
        else
            local why
            local len = off + 1 < stop and src(off + 1, 1):uint() or nil
            if len == nil then
                why = "is the last byte of the option area (no length byte)"
            elseif len < 2 then
                why = string.format("has length %d, below 2", len)
            elseif off + len > stop then
                why = string.format("has length %d, past the end of the option area", len)
            end
            if why then
                if is_ours_v4(kind) then
                    dissect_tf(src(off, stop - off), tree, 4, found)
                elseif not found then
                    option_framing(src(off, stop - off), tree, 4, why)
                end
                return
            end
            if is_ours_v4(kind) then
                if not decoded[off] then dissect_tf(src(off, len), tree, 4, found) end
                found = true
            end
            off = off + len
        end
    end
end

-- §5.3/§5.5: walks one Hop-by-Hop header's options like scan_ipv6: Pad1 is
-- one byte, every other option is type, length (of the data), data. An
-- option that cannot be framed (no length byte, or data past the header)
-- ends the scan: ours is token_tlv.truncated, another type before any of
-- ours token_tlv.option_framing.
local function dissect_hbh(src, hdr, tree)
    if hdr + 2 > src:len() then return end
    local stop = math.min(hdr + (src(hdr + 1, 1):uint() + 1) * 8, src:len())
    local off, found = hdr + 2, false
    while off < stop do
        local kind = src(off, 1):uint()
        if kind == 0 then
            off = off + 1
        else
            local len = off + 1 < stop and src(off + 1, 1):uint() or nil
            if len == nil or off + 2 + len > stop then
                if kind == TF_HBH_TYPE then
                    dissect_tf(src(off, stop - off), tree, 6, found)
                elseif not found then
                    option_framing(src(off, stop - off), tree, 6, len == nil
                        and "is the last byte of the header (no length byte)"
                        or string.format("has length %d, past the end of the header", len))
                end
                return
            end
            if kind == TF_HBH_TYPE then
                dissect_tf(src(off, 2 + len), tree, 6, found)
                found = true
            end
            off = off + 2 + len
        end
    end
end

---------------------------------------------------------------------------
-- §7 Geneve options of class 0xFF49
---------------------------------------------------------------------------

local p_meta = Proto("intellinode.geneve", "IntelliNode Geneve Metadata")

local OPT = {
    FRAGMENT = 0x81, TENSOR_TYPE = 0x02, TRAINING_PHASE = 0x03,
    COMPUTE_CAPABILITY = 0x04, PATH_PREDICTION = 0x05, OFFLOAD_DECISION = 0x06,
    MAC = 0xFF,
}
local opt_names = {}
for name, code in pairs(OPT) do opt_names[code] = name end
-- §7.3: every known type has exactly this many data bytes.
local opt_data_len = {
    [OPT.FRAGMENT] = 12, [OPT.TENSOR_TYPE] = 8, [OPT.TRAINING_PHASE] = 8,
    [OPT.COMPUTE_CAPABILITY] = 8, [OPT.PATH_PREDICTION] = 8, [OPT.OFFLOAD_DECISION] = 4,
    [OPT.MAC] = 20,
}
local tensor_types = { [0] = "normal", [1] = "gradient", [2] = "activation", [3] = "parameter" }
local phases = {
    [0] = "unknown", [1] = "forward", [2] = "backward", [3] = "optimizer step",
    [4] = "inference prefill", [5] = "inference decode",
}
local offload_ops = { [1] = "sum", [2] = "max", [3] = "min", [4] = "product" }
local offload_decisions = { [0] = "host", [1] = "offload to the in-network reducer" }
local FRAGMENT_MAX_SLICES = 8

local gm = {
    option = ProtoField.bytes("intellinode.geneve.option", "Option"),
    class = ProtoField.uint16("intellinode.geneve.option.class", "Option class", base.HEX),
    type = ProtoField.uint8("intellinode.geneve.option.type", "Type", base.HEX, opt_names),
    critical = ProtoField.bool("intellinode.geneve.option.critical", "Critical", 8, nil, 0x80),
    rbits = ProtoField.uint8("intellinode.geneve.option.r", "R bits", base.HEX, nil, 0xE0),
    length = ProtoField.uint8("intellinode.geneve.option.length", "Length (4-byte words)", base.DEC, nil, 0x1F),
    data = ProtoField.bytes("intellinode.geneve.option.data", "Data"),
    reserved = ProtoField.bytes("intellinode.geneve.reserved", "Reserved"),

    frag_message_id = ProtoField.uint32("intellinode.geneve.fragment.message_id", "Message id", base.DEC_HEX),
    frag_slice_index = ProtoField.uint8("intellinode.geneve.fragment.slice_index", "Slice index", base.DEC),
    frag_slice_count = ProtoField.uint8("intellinode.geneve.fragment.slice_count", "Slice count", base.DEC),
    frag_flags = ProtoField.uint8("intellinode.geneve.fragment.flags", "Flags", base.HEX),
    frag_last = ProtoField.bool("intellinode.geneve.fragment.last", "Last packet of the message", 8, nil, 0x01),
    frag_path = ProtoField.uint8("intellinode.geneve.fragment.path", "Path", base.DEC),
    frag_stream_seq = ProtoField.uint32("intellinode.geneve.fragment.stream_seq", "Stream sequence", base.DEC),

    tensor_type = ProtoField.uint8("intellinode.geneve.tensor.type", "Tensor type", base.DEC, tensor_types),
    tensor_flags = ProtoField.uint8("intellinode.geneve.tensor.flags", "Flags", base.HEX),
    tensor_gradient_sync = ProtoField.bool("intellinode.geneve.tensor.gradient_sync",
        "Gradient sync (cross-node all-reduce)", 8, nil, 0x01),
    tensor_pipeline_stage = ProtoField.uint8("intellinode.geneve.tensor.pipeline_stage",
        "Pipeline stage (0 = unknown)", base.DEC),
    tensor_batch_position = ProtoField.uint16("intellinode.geneve.tensor.batch_position",
        "Batch position (0 = unknown)", base.DEC),

    phase = ProtoField.uint8("intellinode.geneve.phase.phase", "Phase", base.DEC, phases),
    phase_iteration = ProtoField.uint32("intellinode.geneve.phase.iteration", "Iteration", base.DEC),

    cap_node_id = ProtoField.uint32("intellinode.geneve.capability.node_id", "Node id", base.DEC),
    cap_weight = ProtoField.uint16("intellinode.geneve.capability.compute_weight", "Compute weight", base.DEC),
    cap_gpu = ProtoField.uint8("intellinode.geneve.capability.gpu_utilisation",
        "GPU utilisation (0-255 = 0-100 %)", base.DEC),
    cap_flags = ProtoField.uint8("intellinode.geneve.capability.flags", "Flags", base.HEX),

    pred_path_id = ProtoField.uint8("intellinode.geneve.prediction.path_id", "Path id", base.DEC),
    pred_horizon = ProtoField.uint8("intellinode.geneve.prediction.horizon_ms", "Horizon (ms)", base.DEC),
    pred_risk = ProtoField.uint8("intellinode.geneve.prediction.congestion_risk",
        "Congestion risk (0-255 = 0..1)", base.DEC),
    pred_bw = ProtoField.uint32("intellinode.geneve.prediction.available_mbps",
        "Available bandwidth (Mbit/s)", base.DEC),

    off_op = ProtoField.uint8("intellinode.geneve.offload.op", "Operator", base.DEC, offload_ops),
    off_decision = ProtoField.uint8("intellinode.geneve.offload.decision", "Decision", base.DEC, offload_decisions),
    off_reducer = ProtoField.uint16("intellinode.geneve.offload.reducer_id", "Reducer id", base.DEC),

    mac_key_id = ProtoField.uint8("intellinode.geneve.mac.key_id", "Key id", base.DEC),
    mac_tag = ProtoField.bytes("intellinode.geneve.mac.tag", "AES-128-CMAC tag (not verified)"),
}
p_meta.fields = gm

-- Named after the receiver's counters (MetadataError::code).
local function meta_expert(code, severity)
    return ProtoExpert.new("intellinode.geneve." .. code, "meta." .. code,
        expert.group.MALFORMED, severity or expert.severity.ERROR)
end
local gm_ex = {
    truncated = meta_expert("truncated"),
    bad_length = meta_expert("bad_length"),
    bad_value = meta_expert("bad_value"),
    duplicate = meta_expert("duplicate"),
    unknown_critical = meta_expert("unknown_critical"),
    missing_mac = meta_expert("missing_mac"),
    mac_not_last = meta_expert("mac_not_last"),
    unknown_type = ProtoExpert.new("intellinode.geneve.unknown_type",
        "unknown non-critical IntelliNode option: covered by the MAC, otherwise ignored",
        expert.group.UNDECODED, expert.severity.NOTE),
}
p_meta.experts = gm_ex

local function bad_value(item, field, value)
    item:add_proto_expert_info(gm_ex.bad_value, string.format("meta.bad_value: %s = %d", field, value))
end

-- Option data decoders, §7.3; `d` is the data (header excluded), of the
-- type's exact length. Each returns a short summary for the tree.
local decode = {}

decode[OPT.FRAGMENT] = function(d, t)
    t:add(gm.frag_message_id, d(0, 4))
    local idx = t:add(gm.frag_slice_index, d(4, 1))
    local cnt = t:add(gm.frag_slice_count, d(5, 1))
    local flags = t:add(gm.frag_flags, d(6, 1))
    flags:add(gm.frag_last, d(6, 1))
    t:add(gm.frag_path, d(7, 1))
    t:add(gm.frag_stream_seq, d(8, 4))
    local i, n = d(4, 1):uint(), d(5, 1):uint()
    -- §7.3: slice_count 1 to 8 (tensor::plan::MAX_SLICES), slice_index
    -- below it; each broken rule is reported. With slice_count 0 there is
    -- no index to be below, so only the count is.
    if n == 0 or n > FRAGMENT_MAX_SLICES then bad_value(cnt, "slice_count", n) end
    if n > 0 and i >= n then bad_value(idx, "slice_index", i) end
    -- LAST is bit 0 alone; the other flag bits are undefined and ignored.
    return string.format("message %d, slice %d of %d, stream seq %d%s", d(0, 4):uint(), i, n,
        d(8, 4):uint(), low(d(6, 1):uint(), 1) == 1 and ", last" or "")
end

decode[OPT.TENSOR_TYPE] = function(d, t)
    local ty = t:add(gm.tensor_type, d(0, 1))
    local flags = t:add(gm.tensor_flags, d(1, 1))
    flags:add(gm.tensor_gradient_sync, d(1, 1))
    t:add(gm.tensor_pipeline_stage, d(2, 1))
    t:add(gm.reserved, d(3, 1))
    t:add(gm.tensor_batch_position, d(4, 2))
    t:add(gm.reserved, d(6, 2))
    local code = d(0, 1):uint()
    if tensor_types[code] == nil then bad_value(ty, "tensor_type", code) end
    return tensor_types[code] or string.format("tensor type %d", code)
end

decode[OPT.TRAINING_PHASE] = function(d, t)
    local ph = t:add(gm.phase, d(0, 1))
    t:add(gm.reserved, d(1, 3))
    t:add(gm.phase_iteration, d(4, 4))
    local code = d(0, 1):uint()
    if phases[code] == nil then bad_value(ph, "phase", code) end
    return string.format("%s, iteration %d", phases[code] or ("phase " .. code), d(4, 4):uint())
end

decode[OPT.COMPUTE_CAPABILITY] = function(d, t)
    t:add(gm.cap_node_id, d(0, 4))
    local w = t:add(gm.cap_weight, d(4, 2))
    local gpu = d(6, 1):uint()
    t:add(gm.cap_gpu, d(6, 1)):append_text(string.format(" (%.1f %%)", gpu * 100 / 255))
    t:add(gm.cap_flags, d(7, 1))
    if d(4, 2):uint() == 0 then bad_value(w, "compute_weight", 0) end
    return string.format("node %d, weight %d", d(0, 4):uint(), d(4, 2):uint())
end

decode[OPT.PATH_PREDICTION] = function(d, t)
    t:add(gm.pred_path_id, d(0, 1))
    t:add(gm.pred_horizon, d(1, 1))
    local risk = d(2, 1):uint()
    t:add(gm.pred_risk, d(2, 1)):append_text(string.format(" (%.3f)", risk / 255))
    t:add(gm.reserved, d(3, 1))
    t:add(gm.pred_bw, d(4, 4))
    return string.format("path %d in %d ms: %d Mbit/s", d(0, 1):uint(), d(1, 1):uint(), d(4, 4):uint())
end

decode[OPT.OFFLOAD_DECISION] = function(d, t)
    local op = t:add(gm.off_op, d(0, 1))
    local dec = t:add(gm.off_decision, d(1, 1))
    t:add(gm.off_reducer, d(2, 2))
    local o, c = d(0, 1):uint(), d(1, 1):uint()
    if offload_ops[o] == nil then bad_value(op, "op", o) end
    if offload_decisions[c] == nil then bad_value(dec, "decision", c) end
    return string.format("%s: %s", offload_ops[o] or ("op " .. o), c == 1
        and ("reducer " .. d(2, 2):uint()) or (offload_decisions[c] or ("decision " .. c)))
end

decode[OPT.MAC] = function(d, t)
    t:add(gm.mac_key_id, d(0, 1))
    t:add(gm.reserved, d(1, 3))
    t:add(gm.mac_tag, d(4, 16))
    return "key " .. d(0, 1):uint()
end

-- §7.2/§7.3/§7.5: walks one Geneve header's options area like
-- MetadataRepr::parse_verified's structural pass, minus the MAC check.
-- Returns the names of the IntelliNode options found (for the Info column).
--
-- The IntelliNode subtree is added for every Geneve header, even one
-- without a single class-0xFF49 option (or with no options at all): the
-- receiver runs parse_verified on the options of every overlay frame, so
-- such a frame is counted as meta.missing_mac, and meta.truncated is
-- counted for an option of any class that runs past the area. Those
-- errors belong to the frame's options area rather than to any one
-- IntelliNode option, so they are raised on this subtree, which covers
-- the area (or the Geneve header when the area is empty), i.e. on the
-- Geneve frame, and `intellinode.geneve.missing_mac` finds exactly the
-- frames the counter counts.
local function dissect_geneve(src, hdr, tree)
    if hdr + 8 > src:len() then return nil end
    local area = hdr + 8
    local stop = area + low(src(hdr, 1):uint(), 6) * 4
    local names, seen, mac_seen, truncated = {}, {}, false, false
    local shown = math.min(stop, src:len()) - area
    local t
    if shown > 0 then
        t = tree:add(p_meta, src(area, shown))
    else
        t = tree:add(p_meta, src(hdr, 8))
        t:append_text(" (no Geneve options)")
    end
    local off = area
    while off < stop do
        if off + 4 > stop or off + 4 > src:len() then
            t:add_proto_expert_info(gm_ex.truncated, "meta.truncated: an option header runs past the options area")
            truncated = true
            break
        end
        local class = src(off, 2):uint()
        local ty = src(off + 2, 1):uint()
        local dlen = low(src(off + 3, 1):uint(), 5) * 4
        local whole = off + 4 + dlen <= stop and off + 4 + dlen <= src:len()
        if class == GENEVE_CLASS then
            local name = opt_names[ty] or string.format("0x%02X", ty)
            local o = t:add(gm.option, src(off, whole and 4 + dlen or math.min(stop, src:len()) - off))
            o:add(gm.class, src(off, 2))
            o:add(gm.type, src(off + 2, 1))
            o:add(gm.critical, src(off + 2, 1))
            o:add(gm.rbits, src(off + 3, 1))
            o:add(gm.length, src(off + 3, 1))
            if not whole then
                o:add_proto_expert_info(gm_ex.truncated, "meta.truncated: the option runs past the options area")
                o:set_text(name .. " (truncated)")
                names[#names + 1] = name
                truncated = true
                break
            end
            local d = src(off + 4, dlen)
            local summary
            if mac_seen then
                o:add_proto_expert_info(gm_ex.mac_not_last, "meta.mac_not_last: IntelliNode option after the MAC")
            end
            if opt_data_len[ty] == nil then
                if dlen > 0 then o:add(gm.data, d) end
                if ty >= 0x80 then
                    o:add_proto_expert_info(gm_ex.unknown_critical, string.format(
                        "meta.unknown_critical: unknown critical IntelliNode option 0x%02X", ty))
                else
                    o:add_proto_expert_info(gm_ex.unknown_type)
                end
                summary = "unknown"
            elseif dlen ~= opt_data_len[ty] then
                if dlen > 0 then o:add(gm.data, d) end
                o:add_proto_expert_info(gm_ex.bad_length, string.format(
                    "meta.bad_length: %d data bytes, %s has %d", dlen, name, opt_data_len[ty]))
                summary = "bad length"
            else
                summary = decode[ty](d, o)
                if seen[ty] and ty ~= OPT.MAC then
                    o:add_proto_expert_info(gm_ex.duplicate, "meta.duplicate: " .. name .. " appears twice")
                end
            end
            seen[ty] = true
            if ty == OPT.MAC then mac_seen = true end
            o:set_text(string.format("%s (0x%02X): %s", name, ty, summary))
            names[#names + 1] = name
        elseif not whole then
            t:add_proto_expert_info(gm_ex.truncated, string.format(
                "meta.truncated: an option of class 0x%04X runs past the options area", class))
            truncated = true
            break
        end
        off = off + 4 + dlen
    end
    -- The receiver stops at the first structural error, so a MAC lost in
    -- a truncated area is not reported as missing on top of it.
    if not mac_seen and not truncated then
        t:add_proto_expert_info(gm_ex.missing_mac, "meta.missing_mac: no MAC option, the metadata is unauthenticated")
    end
    if #names > 0 then t:append_text(": " .. table.concat(names, ", ")) end
    return names
end

---------------------------------------------------------------------------
-- §1 Latency stamp
---------------------------------------------------------------------------

local p_stamp = Proto("intellinode.stamp", "IntelliNode Latency Stamp")
local STAMP_LEN, STAMP_MAGIC = 16, 0x494E4C54 -- "INLT"
local st = {
    magic = ProtoField.uint32("intellinode.stamp.magic", "Magic", base.HEX),
    seq = ProtoField.uint32("intellinode.stamp.seq", "Sequence", base.DEC),
    tsc = ProtoField.uint64("intellinode.stamp.tsc", "TSC at transmit", base.DEC),
}
p_stamp.fields = st

-- pktgen::send::Stamp::from_tail: the last 16 bytes of the frame, when
-- they start with the magic; anything else is an unstamped frame.
local function dissect_stamp(tvb, pinfo, tree)
    local n = tvb:len()
    if n < STAMP_LEN or tvb(n - STAMP_LEN, 4):uint() ~= STAMP_MAGIC then return end
    local r = tvb(n - STAMP_LEN, STAMP_LEN)
    local t = tree:add(p_stamp, r)
    t:add(st.magic, r(0, 4)):append_text(' ("INLT")')
    t:add(st.seq, r(4, 4))
    t:add(st.tsc, r(8, 8))
    t:append_text(string.format(", seq %d, TSC %s", r(4, 4):uint(), tostring(r(8, 8):uint64())))
    pinfo.cols.info:append(string.format(" [INLT seq %d]", r(4, 4):uint()))
end

---------------------------------------------------------------------------
-- The postdissector: IPv4 options, IPv6 Hop-by-Hop, Geneve, latency stamp
---------------------------------------------------------------------------

local p_post = Proto("intellinode", "IntelliNode")
local f_hbh = Field.new("ipv6.hopopts.nxt")
local f_geneve = Field.new("geneve.version")

function p_post.dissector(tvb, pinfo, tree)
    local decoded = ipv4_decoded.frame == pinfo.number and ipv4_decoded.at or {}
    ipv4_decoded.frame, ipv4_decoded.at = nil, {}
    for _, fi in ipairs({ f_ip_hdr_len() }) do
        if fi.source then walk_ipv4(fi.source, fi.offset, tree, decoded) end
    end
    for _, fi in ipairs({ f_hbh() }) do
        if fi.source then dissect_hbh(fi.source, fi.offset, tree) end
    end
    for _, fi in ipairs({ f_geneve() }) do
        if fi.source then
            local names = dissect_geneve(fi.source, fi.offset, tree)
            if names and #names > 0 then
                pinfo.cols.info:append(" [IntelliNode " .. table.concat(names, " ") .. "]")
            end
        end
    end
    dissect_stamp(tvb, pinfo, tree)
end

register_postdissector(p_post)

---------------------------------------------------------------------------
-- §3 Control protocol (INCP), cleartext header
---------------------------------------------------------------------------

local p_incp = Proto("intellinode.incp", "IntelliNode Control Protocol")
local INCP_HEADER, INCP_TAG, INCP_MIN = 44, 16, 64

local incp = {
    magic = ProtoField.string("intellinode.incp.magic", "Magic"),
    version = ProtoField.uint8("intellinode.incp.version", "Version", base.DEC),
    flags = ProtoField.uint8("intellinode.incp.flags", "Flags", base.HEX),
    reply = ProtoField.bool("intellinode.incp.flags.reply", "REPLY (appliance to client)", 8, nil, 0x01),
    flags_unknown = ProtoField.uint8("intellinode.incp.flags.unknown", "Undefined flags (must be 0)", base.HEX, nil, 0xFE),
    reserved = ProtoField.uint16("intellinode.incp.reserved", "Reserved", base.HEX),
    key_id = ProtoField.uint32("intellinode.incp.key_id", "Key id (peer)", base.DEC),
    seq = ProtoField.uint64("intellinode.incp.seq", "Sequence number", base.DEC),
    nonce = ProtoField.bytes("intellinode.incp.nonce", "Nonce (XChaCha20)"),
    ciphertext = ProtoField.bytes("intellinode.incp.ciphertext", "Ciphertext (kind, origin time, records)"),
    ciphertext_len = ProtoField.uint32("intellinode.incp.ciphertext_len", "Plaintext length", base.DEC),
    tag = ProtoField.bytes("intellinode.incp.tag", "Poly1305 tag"),
}
p_incp.fields = incp

-- Named after the receiver's reject counters (RejectCode::as_str).
local incp_ex = {
    truncated = ProtoExpert.new("intellinode.incp.truncated", "truncated",
        expert.group.MALFORMED, expert.severity.ERROR),
    oversized = ProtoExpert.new("intellinode.incp.oversized", "oversized",
        expert.group.PROTOCOL, expert.severity.WARN),
    bad_version = ProtoExpert.new("intellinode.incp.bad_version", "bad_version",
        expert.group.MALFORMED, expert.severity.ERROR),
    malformed_header = ProtoExpert.new("intellinode.incp.malformed_header", "malformed_header",
        expert.group.MALFORMED, expert.severity.ERROR),
}
p_incp.experts = incp_ex

function p_incp.dissector(tvb, pinfo, tree)
    local n = tvb:len()
    if n < 4 or tvb(0, 4):string() ~= "INCP" then return 0 end
    pinfo.cols.protocol = "INCP"
    local t = tree:add(p_incp, tvb())
    t:add(incp.magic, tvb(0, 4))
    if n < INCP_MIN then
        t:add_proto_expert_info(incp_ex.truncated, string.format(
            "truncated: %d bytes, at least %d (header, tag and 4 bytes)", n, INCP_MIN))
    end
    if n < 5 then return n end
    t:add(incp.version, tvb(4, 1))
    if tvb(4, 1):uint() ~= 1 then
        t:add_proto_expert_info(incp_ex.bad_version, "bad_version: only version 1 is defined")
        pinfo.cols.info = string.format("INCP version %d", tvb(4, 1):uint())
        return n
    end
    if n < INCP_HEADER then
        pinfo.cols.info = "INCP (truncated)"
        return n
    end
    local flags = tvb(5, 1):uint()
    -- REPLY is bit 0 alone: flags 0x03 is a reply with an undefined flag
    -- (malformed_header below), not a request.
    local reply = low(flags, 1) == 1
    local ft = t:add(incp.flags, tvb(5, 1))
    ft:add(incp.reply, tvb(5, 1))
    ft:add(incp.flags_unknown, tvb(5, 1))
    local rsv = t:add(incp.reserved, tvb(6, 2))
    if flags >= 2 then
        ft:add_proto_expert_info(incp_ex.malformed_header, "malformed_header: flag bits 1-7 must be 0")
    end
    if tvb(6, 2):uint() ~= 0 then
        rsv:add_proto_expert_info(incp_ex.malformed_header, "malformed_header: reserved must be 0")
    end
    t:add(incp.key_id, tvb(8, 4))
    t:add(incp.seq, tvb(12, 8))
    t:add(incp.nonce, tvb(20, 24))
    local ct_len = n - INCP_HEADER - INCP_TAG
    if ct_len > 0 then
        t:add(incp.ciphertext, tvb(INCP_HEADER, ct_len))
    end
    if ct_len > 0 then
        t:add(incp.ciphertext_len, tvb(INCP_HEADER, ct_len), ct_len):set_generated()
    else
        t:add(incp.ciphertext_len, 0):set_generated()
    end
    if n >= INCP_HEADER + INCP_TAG then
        t:add(incp.tag, tvb(n - INCP_TAG, INCP_TAG))
    end
    -- 4096 is the appliance's default request limit (configurable up to
    -- 65507); replies may be as long as 65000.
    local max = reply and 65000 or 4096
    if n > max then
        t:add_proto_expert_info(incp_ex.oversized, string.format(
            "oversized: %d bytes, the %s limit is %d%s", n, reply and "reply" or "default request",
            max, reply and "" or " (configurable up to 65507)"))
    end
    local what = reply and "reply" or "request"
    t:append_text(string.format(", %s, key id %d, seq %s", what, tvb(8, 4):uint(), tostring(tvb(12, 8):uint64())))
    pinfo.cols.info = string.format("INCP %s key_id=%d seq=%s, %d bytes encrypted", what,
        tvb(8, 4):uint(), tostring(tvb(12, 8):uint64()), math.max(ct_len, 0))
    return n
end

---------------------------------------------------------------------------
-- §4 Path probe (INPR)
---------------------------------------------------------------------------

local p_probe = Proto("intellinode.probe", "IntelliNode Path Probe")
local PROBE_LEN = 48
-- Where a worker expects the payload: untagged Ethernet, IPv4 without
-- options, UDP (§4). Anywhere else the frame is forwarded, not a probe.
local PROBE_PAYLOAD_OFFSET = 42

local probe_types = { [1] = "request", [2] = "reply" }
local pr = {
    magic = ProtoField.string("intellinode.probe.magic", "Magic"),
    version = ProtoField.uint8("intellinode.probe.version", "Version", base.DEC),
    type = ProtoField.uint8("intellinode.probe.type", "Type", base.DEC, probe_types),
    path_id = ProtoField.uint16("intellinode.probe.path_id", "Path id", base.DEC),
    seq = ProtoField.uint64("intellinode.probe.seq", "Sequence number", base.DEC),
    tx_ns = ProtoField.uint64("intellinode.probe.tx_ns", "Prober transmit time (ns)", base.DEC),
    reflect_ns = ProtoField.uint64("intellinode.probe.reflect_ns", "Reflector turnaround time (ns)", base.DEC),
    tag = ProtoField.bytes("intellinode.probe.tag", "HMAC-SHA256 tag, first 16 bytes (not verified)"),
}
p_probe.fields = pr

local pr_ex = {
    truncated = ProtoExpert.new("intellinode.probe.truncated", "probe payload shorter than 48 bytes",
        expert.group.MALFORMED, expert.severity.ERROR),
    not_a_probe = ProtoExpert.new("intellinode.probe.not_a_probe", "not an INPR v1 probe",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_type = ProtoExpert.new("intellinode.probe.bad_type", "probe type is neither request (1) nor reply (2)",
        expert.group.MALFORMED, expert.severity.ERROR),
    reflect_in_request = ProtoExpert.new("intellinode.probe.reflect_in_request",
        "reflect time is not 0 in a request", expert.group.PROTOCOL, expert.severity.NOTE),
    not_recognised = ProtoExpert.new("intellinode.probe.not_recognised",
        "not where a worker looks for a probe (VLAN tag, IP options, IPv6 or another port): forwarded as ordinary traffic",
        expert.group.PROTOCOL, expert.severity.WARN),
}
p_probe.experts = pr_ex

function p_probe.dissector(tvb, pinfo, tree)
    local n = tvb:len()
    if n < 4 or tvb(0, 4):string() ~= "INPR" then return 0 end
    pinfo.cols.protocol = "INPR"
    local t = tree:add(p_probe, tvb(0, math.min(n, PROBE_LEN)))
    t:add(pr.magic, tvb(0, 4))
    if n < PROBE_LEN then
        t:add_proto_expert_info(pr_ex.truncated)
        if n < 8 then return n end
    end
    t:add(pr.version, tvb(4, 1))
    if tvb(4, 1):uint() ~= 1 then
        t:add_proto_expert_info(pr_ex.not_a_probe, "not an INPR v1 probe: version " .. tvb(4, 1):uint())
        return n
    end
    local ty = tvb(5, 1):uint()
    local ti = t:add(pr.type, tvb(5, 1))
    if probe_types[ty] == nil then ti:add_proto_expert_info(pr_ex.bad_type) end
    t:add(pr.path_id, tvb(6, 2))
    if n < PROBE_LEN then return n end
    t:add(pr.seq, tvb(8, 8))
    t:add(pr.tx_ns, tvb(16, 8))
    local ri = t:add(pr.reflect_ns, tvb(24, 8))
    if ty == 1 and tvb(24, 8):uint64() ~= UInt64(0) then ri:add_proto_expert_info(pr_ex.reflect_in_request) end
    t:add(pr.tag, tvb(32, 16))
    if tvb:offset() ~= PROBE_PAYLOAD_OFFSET or pinfo.dst_port ~= p_probe.prefs.port then
        t:add_proto_expert_info(pr_ex.not_recognised)
    end
    local what = probe_types[ty] or ("type " .. ty)
    t:append_text(string.format(", %s, path %d, seq %s", what, tvb(6, 2):uint(), tostring(tvb(8, 8):uint64())))
    pinfo.cols.info = string.format("INPR %s path=%d seq=%s", what, tvb(6, 2):uint(), tostring(tvb(8, 8):uint64()))
    return n
end

---------------------------------------------------------------------------
-- §8 UDP inference datagrams (INUD)
---------------------------------------------------------------------------

local p_inud = Proto("intellinode.inud", "IntelliNode UDP Inference Datagram")
local INUD_HEADER, INUD_TOKENS_HEADER, INUD_MAX = 16, 24, 1400
local INUD_REQUEST, INUD_TOKENS, INUD_ERROR = 1, 2, 3

local inud_kinds = { [1] = "request", [2] = "tokens", [3] = "error" }
local ud = {
    magic = ProtoField.string("intellinode.inud.magic", "Magic"),
    version = ProtoField.uint8("intellinode.inud.version", "Version", base.DEC),
    kind = ProtoField.uint8("intellinode.inud.kind", "Kind", base.DEC, inud_kinds),
    flags = ProtoField.uint16("intellinode.inud.flags", "Flags", base.HEX),
    last = ProtoField.bool("intellinode.inud.flags.last", "LAST (the answer's final datagram)", 16, nil, 0x0001),
    request_id = ProtoField.uint64("intellinode.inud.request_id", "Request id", base.DEC),
    body = ProtoField.string("intellinode.inud.body", "Request body (OpenAI chat-completions JSON)"),
    body_len = ProtoField.uint32("intellinode.inud.body_len", "Body length", base.DEC),
    seq = ProtoField.uint32("intellinode.inud.seq", "Sequence number", base.DEC),
    count = ProtoField.uint16("intellinode.inud.count", "Token count", base.DEC),
    reserved = ProtoField.uint16("intellinode.inud.reserved", "Reserved", base.HEX),
    text = ProtoField.string("intellinode.inud.text", "Tokens' text"),
    message = ProtoField.string("intellinode.inud.message", "Error message"),
}
p_inud.fields = ud

-- §8.5: what the server ignores and counts as udp_malformed, as far as one
-- datagram shows it (whether a tokens or error datagram went *to* the
-- server depends on who the server is); §8.4: a request over 1400 bytes
-- is answered with an error and counted as udp_oversize, any other
-- datagram over 1400 bytes is udp_malformed.
local function inud_expert(name, text)
    return ProtoExpert.new("intellinode.inud." .. name, text, expert.group.MALFORMED, expert.severity.ERROR)
end
local ud_ex = {
    truncated = inud_expert("truncated", "udp_malformed: shorter than its fixed part"),
    bad_version = inud_expert("bad_version", "udp_malformed: version other than 1"),
    unknown_kind = inud_expert("unknown_kind", "udp_malformed: unknown kind"),
    empty_request = inud_expert("empty_request", "udp_malformed: a request without a body"),
    oversize = inud_expert("oversize", "over 1400 bytes"),
}
p_inud.experts = ud_ex

-- The request body is JSON: shown through Wireshark's JSON dissector too,
-- when the build has one.
local json_ok, json_dissector = pcall(Dissector.get, "json")
if not json_ok then json_dissector = nil end

local function utf8_field(t, field, range)
    t:add_packet_field(field, range, ENC_UTF_8)
end

-- Claims any UDP payload that starts with the magic, whatever its version,
-- so that a bad version or a short datagram is shown with its error; the
-- four bytes "INUD" are specific enough on their own.
local function dissect_inud(tvb, pinfo, tree)
    local n = tvb:len()
    if n < 4 or tvb(0, 4):string() ~= "INUD" then return 0 end
    pinfo.cols.protocol = "INUD"
    local t = tree:add(p_inud, tvb())
    t:add(ud.magic, tvb(0, 4))
    local problems = {}
    local function flag(item, ex, text)
        item:add_proto_expert_info(ex, text)
        problems[#problems + 1] = text
    end
    if n < INUD_HEADER then
        flag(t, ud_ex.truncated, string.format(
            "udp_malformed: %d bytes, shorter than the %d-byte header", n, INUD_HEADER))
    end
    local version = n >= 5 and tvb(4, 1):uint() or nil
    if version then
        local vi = t:add(ud.version, tvb(4, 1))
        if version ~= 1 then
            flag(vi, ud_ex.bad_version, string.format("udp_malformed: version %d, only 1 is defined", version))
        end
    end
    local kind = n >= 6 and tvb(5, 1):uint() or nil
    if kind then
        local ki = t:add(ud.kind, tvb(5, 1))
        if inud_kinds[kind] == nil then
            flag(ki, ud_ex.unknown_kind, string.format("udp_malformed: unknown kind %d", kind))
        end
    end
    local what = kind and (inud_kinds[kind] or ("kind " .. kind)) or "datagram"
    if n < INUD_HEADER or version ~= 1 then
        -- Nothing after the version is trusted (emulator::datagram::decode).
        pinfo.cols.info = string.format("INUD %s, %d bytes (%s)", what, n, table.concat(problems, "; "))
        return n
    end
    local fi = t:add(ud.flags, tvb(6, 2))
    if kind == INUD_TOKENS then fi:add(ud.last, tvb(6, 2)) end
    t:add(ud.request_id, tvb(8, 8))
    local id = tostring(tvb(8, 8):uint64())
    local detail = ""
    if kind == INUD_REQUEST then
        if n == INUD_HEADER then
            flag(t, ud_ex.empty_request, "udp_malformed: a request without a body")
            t:add(ud.body_len, 0):set_generated()
        else
            local body = tvb(INUD_HEADER)
            utf8_field(t, ud.body, body)
            t:add(ud.body_len, body, n - INUD_HEADER):set_generated()
            if json_dissector then
                pcall(function() json_dissector:call(body:tvb(), pinfo, t) end)
                pinfo.cols.protocol = "INUD"
            end
            detail = string.format(", %d bytes of JSON", n - INUD_HEADER)
        end
    elseif kind == INUD_TOKENS then
        if n < INUD_TOKENS_HEADER then
            flag(t, ud_ex.truncated, string.format(
                "udp_malformed: %d bytes, shorter than the %d-byte fixed part of a tokens datagram",
                n, INUD_TOKENS_HEADER))
        else
            t:add(ud.seq, tvb(16, 4))
            t:add(ud.count, tvb(20, 2))
            t:add(ud.reserved, tvb(22, 2))
            if n > INUD_TOKENS_HEADER then utf8_field(t, ud.text, tvb(INUD_TOKENS_HEADER)) end
            detail = string.format(" seq=%d count=%d%s", tvb(16, 4):uint(), tvb(20, 2):uint(),
                low(tvb(6, 2):uint(), 1) == 1 and " LAST" or "")
        end
    elseif kind == INUD_ERROR then
        if n > INUD_HEADER then utf8_field(t, ud.message, tvb(INUD_HEADER)) end
    end
    if n > INUD_MAX then
        flag(t, ud_ex.oversize, kind == INUD_REQUEST
            and string.format("udp_oversize: a request of %d bytes, over %d; the server answers with an error datagram", n, INUD_MAX)
            or string.format("udp_malformed: %d bytes, over %d", n, INUD_MAX))
    end
    t:append_text(string.format(", %s, request id %s", what, id))
    pinfo.cols.info = string.format("INUD %s id=%s%s%s", what, id, detail,
        #problems > 0 and (" (" .. table.concat(problems, "; ") .. ")") or "")
    return n
end

function p_inud.dissector(tvb, pinfo, tree)
    return dissect_inud(tvb, pinfo, tree)
end

p_inud:register_heuristic("udp", function(tvb, pinfo, tree)
    return dissect_inud(tvb, pinfo, tree) > 0
end)

---------------------------------------------------------------------------
-- Ports
---------------------------------------------------------------------------

p_incp.prefs.port = Pref.uint("UDP port", INCP_DEFAULT_PORT,
    "The appliance's control.listen port (default 7470)")
p_probe.prefs.port = Pref.uint("UDP port", INPR_DEFAULT_PORT,
    "The probe udp_port of the configuration (default 7471)")

local udp_port = DissectorTable.get("udp.port")
local registered = {}

local function register_port(proto)
    if registered[proto] then udp_port:remove(registered[proto], proto) end
    registered[proto] = proto.prefs.port
    udp_port:add(proto.prefs.port, proto)
end

p_incp.prefs_changed = function() register_port(p_incp) end
p_probe.prefs_changed = function() register_port(p_probe) end
register_port(p_incp)
register_port(p_probe)
-- INUD has no port of its own; Decode As offers it for any.
udp_port:add_for_decode_as(p_inud)
