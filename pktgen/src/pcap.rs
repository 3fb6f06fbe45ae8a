//! Classic libpcap files: a small writer and a defensive reader.
//!
//! The format is a 24-byte global header followed by records, each a 16-byte
//! header (seconds, sub-second fraction, captured length, original length)
//! and the captured bytes:
//!
//! ```text
//! global: magic u32 | version 2.4 (u16, u16) | thiszone i32 | sigfigs u32 | snaplen u32 | linktype u32
//! record: ts_sec u32 | ts_frac u32 | caplen u32 | origlen u32 | caplen bytes
//! ```
//!
//! The magic says both the byte order of every header field and the unit of
//! `ts_frac`: `a1b2c3d4` for microseconds, `a1b23c4d` for nanoseconds, each
//! readable in either byte order. The writer emits native little-endian
//! files with the microsecond magic by default, which every tool reads
//! (DPDK's `net_pcap` driver included); nanosecond files are available for
//! latency work.
//!
//! The reader is written for corrupt input: every length is checked before
//! it is used for an allocation (a record may not claim more than
//! [`MAX_RECORD_LEN`] bytes), and every failure is a [`PcapError`] that names
//! the file, the byte offset and what was wrong, in one line.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// `LINKTYPE_ETHERNET`: frames start with an Ethernet II header.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The snapshot length written to new files.
pub const SNAPLEN: u32 = 65535;
/// The largest record the reader accepts (Wireshark's limit for Ethernet).
pub const MAX_RECORD_LEN: u32 = 262_144;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Sub-second resolution of a file's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TsResolution {
    /// Microseconds (magic `a1b2c3d4`), the format every tool reads.
    #[default]
    Micro,
    /// Nanoseconds (magic `a1b23c4d`).
    Nano,
}

/// One record read back from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length of the frame on the wire (≥ `data.len()` when truncated by snaplen).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// What exactly was wrong with a pcap file.
#[derive(Debug)]
pub enum PcapErrorKind {
    /// The file could not be opened for reading.
    Open(io::Error),
    /// The file could not be created for writing.
    Create(io::Error),
    /// A read or write failed part-way through.
    Io(io::Error),
    /// The file ends inside the 24-byte global header.
    TruncatedGlobalHeader {
        /// Bytes present.
        got: usize,
    },
    /// The first four bytes are not a classic pcap magic (pcapng and other
    /// formats are not supported).
    BadMagic(u32),
    /// A major version other than 2.
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The file ends inside a 16-byte record header.
    TruncatedRecordHeader {
        /// Bytes present.
        got: usize,
    },
    /// The file ends inside a record's data.
    TruncatedRecordData {
        /// Bytes the record header announced.
        caplen: u32,
        /// Bytes present.
        got: usize,
    },
    /// A record claims more bytes than any sane capture holds.
    RecordTooLarge {
        /// Bytes the record header announced.
        caplen: u32,
    },
    /// A record claims to have captured more than was on the wire.
    CaplenExceedsOrigLen {
        /// Captured length.
        caplen: u32,
        /// Original length.
        orig_len: u32,
    },
    /// A timestamp that cannot be written in the 32-bit seconds field.
    TimestampOutOfRange(u64),
    /// A frame longer than the 32-bit length fields allow.
    FrameTooLong(usize),
}

/// A pcap failure: which file, where in it, and what.
#[derive(Debug)]
pub struct PcapError {
    /// The file name (or another label for the stream).
    pub source_name: String,
    /// Byte offset where the problem was found.
    pub offset: u64,
    /// What was wrong.
    pub kind: PcapErrorKind,
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pcap {}: ", self.source_name)?;
        let at = self.offset;
        match &self.kind {
            PcapErrorKind::Open(e) => write!(f, "cannot open: {e}"),
            PcapErrorKind::Create(e) => write!(f, "cannot create: {e}"),
            PcapErrorKind::Io(e) => write!(f, "I/O error at byte {at}: {e}"),
            PcapErrorKind::TruncatedGlobalHeader { got } => write!(
                f,
                "truncated global header: {got} of 24 bytes (not a pcap file?)"
            ),
            PcapErrorKind::BadMagic(m) => write!(
                f,
                "bad magic 0x{m:08x}: not a classic pcap file (pcapng is not supported)"
            ),
            PcapErrorKind::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported pcap version {major}.{minor} (expected 2.x)")
            }
            PcapErrorKind::TruncatedRecordHeader { got } => write!(
                f,
                "truncated record header at byte {at}: {got} of 16 bytes"
            ),
            PcapErrorKind::TruncatedRecordData { caplen, got } => write!(
                f,
                "truncated record data at byte {at}: header announced {caplen} bytes, file has {got}"
            ),
            PcapErrorKind::RecordTooLarge { caplen } => write!(
                f,
                "record at byte {at} claims {caplen} bytes, above the {MAX_RECORD_LEN}-byte limit (corrupt file?)"
            ),
            PcapErrorKind::CaplenExceedsOrigLen { caplen, orig_len } => write!(
                f,
                "record at byte {at} captured {caplen} bytes of a {orig_len}-byte frame"
            ),
            PcapErrorKind::TimestampOutOfRange(ts) => write!(
                f,
                "timestamp {ts} ns does not fit a pcap record (years 1970-2106)"
            ),
            PcapErrorKind::FrameTooLong(n) => write!(f, "frame of {n} bytes is too long for pcap"),
        }
    }
}

impl std::error::Error for PcapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            PcapErrorKind::Open(e) | PcapErrorKind::Create(e) | PcapErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Writes records to any `Write` sink.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    name: String,
    resolution: TsResolution,
    offset: u64,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (truncating) `path` and writes the global header.
    pub fn create(path: &Path, resolution: TsResolution) -> Result<Self, PcapError> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| PcapError {
            source_name: name.clone(),
            offset: 0,
            kind: PcapErrorKind::Create(e),
        })?;
        PcapWriter::new(BufWriter::new(file), name, resolution)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header (Ethernet link type, snaplen 65535).
    pub fn new(
        mut inner: W,
        name: impl Into<String>,
        resolution: TsResolution,
    ) -> Result<Self, PcapError> {
        let name = name.into();
        let magic = match resolution {
            TsResolution::Micro => MAGIC_MICROS,
            TsResolution::Nano => MAGIC_NANOS,
        };
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0, as every modern writer leaves them.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        inner.write_all(&h).map_err(|e| PcapError {
            source_name: name.clone(),
            offset: 0,
            kind: PcapErrorKind::Io(e),
        })?;
        Ok(PcapWriter {
            inner,
            name,
            resolution,
            offset: GLOBAL_HEADER_LEN as u64,
        })
    }

    fn err(&self, kind: PcapErrorKind) -> PcapError {
        PcapError {
            source_name: self.name.clone(),
            offset: self.offset,
            kind,
        }
    }

    /// Appends one frame captured at `ts_ns`. Frames longer than the
    /// snaplen are truncated in the file, with the true length recorded.
    pub fn write_packet(&mut self, ts_ns: u64, data: &[u8]) -> Result<(), PcapError> {
        let orig_len = u32::try_from(data.len())
            .map_err(|_| self.err(PcapErrorKind::FrameTooLong(data.len())))?;
        let sec = u32::try_from(ts_ns / 1_000_000_000)
            .map_err(|_| self.err(PcapErrorKind::TimestampOutOfRange(ts_ns)))?;
        let frac = match self.resolution {
            TsResolution::Micro => (ts_ns % 1_000_000_000 / 1_000) as u32,
            TsResolution::Nano => (ts_ns % 1_000_000_000) as u32,
        };
        let caplen = orig_len.min(SNAPLEN);
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        let body = &data[..caplen as usize];
        let res = self
            .inner
            .write_all(&h)
            .and_then(|()| self.inner.write_all(body));
        res.map_err(|e| self.err(PcapErrorKind::Io(e)))?;
        self.offset += (RECORD_HEADER_LEN + body.len()) as u64;
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<W, PcapError> {
        self.inner
            .flush()
            .map_err(|e| self.err(PcapErrorKind::Io(e)))?;
        Ok(self.inner)
    }
}

/// Reads records from any `Read` source; also an `Iterator` of
/// `Result<Record, PcapError>` that stops after the first error.
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    inner: R,
    name: String,
    offset: u64,
    swapped: bool,
    resolution: TsResolution,
    snaplen: u32,
    linktype: u32,
    failed: bool,
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl PcapReader<BufReader<File>> {
    /// Opens `path` and reads its global header.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| PcapError {
            source_name: name.clone(),
            offset: 0,
            kind: PcapErrorKind::Open(e),
        })?;
        PcapReader::new(BufReader::new(file), name)
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads and validates the global header from `inner`; `name` labels
    /// errors (normally the file name).
    pub fn new(mut inner: R, name: impl Into<String>) -> Result<Self, PcapError> {
        let name = name.into();
        let mk = |offset, kind| PcapError {
            source_name: name.clone(),
            offset,
            kind,
        };
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        let got = read_full(&mut inner, &mut h).map_err(|e| mk(0, PcapErrorKind::Io(e)))?;
        if got < GLOBAL_HEADER_LEN {
            return Err(mk(0, PcapErrorKind::TruncatedGlobalHeader { got }));
        }
        let raw = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, resolution) = match raw {
            MAGIC_MICROS => (false, TsResolution::Micro),
            MAGIC_NANOS => (false, TsResolution::Nano),
            m if m.swap_bytes() == MAGIC_MICROS => (true, TsResolution::Micro),
            m if m.swap_bytes() == MAGIC_NANOS => (true, TsResolution::Nano),
            // Report the magic as it would read in the file's byte order.
            m => return Err(mk(0, PcapErrorKind::BadMagic(m.swap_bytes()))),
        };
        let u16_at = |at: usize| {
            let v = u16::from_le_bytes([h[at], h[at + 1]]);
            if swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let u32_at = |at: usize| {
            let v = u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            if swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(mk(4, PcapErrorKind::UnsupportedVersion { major, minor }));
        }
        Ok(PcapReader {
            inner,
            name,
            offset: GLOBAL_HEADER_LEN as u64,
            swapped,
            resolution,
            snaplen: u32_at(16),
            // The upper 16 bits may carry FCS flags (pcap-linktype(7)).
            linktype: u32_at(20) & 0x0fff_ffff,
            failed: false,
        })
    }

    /// The link type (1 for Ethernet).
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// The snapshot length the writer declared.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The file's timestamp resolution.
    pub fn resolution(&self) -> TsResolution {
        self.resolution
    }

    /// True when the header fields are big-endian relative to this reader.
    pub fn is_swapped(&self) -> bool {
        self.swapped
    }

    /// The file label used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn err(&self, offset: u64, kind: PcapErrorKind) -> PcapError {
        PcapError {
            source_name: self.name.clone(),
            offset,
            kind,
        }
    }

    /// The next record, `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, PcapError> {
        let at = self.offset;
        let mut h = [0u8; RECORD_HEADER_LEN];
        let got =
            read_full(&mut self.inner, &mut h).map_err(|e| self.err(at, PcapErrorKind::Io(e)))?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(self.err(at, PcapErrorKind::TruncatedRecordHeader { got }));
        }
        let word = |i: usize| {
            let v = u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            if self.swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let (sec, frac, caplen, orig_len) = (word(0), word(4), word(8), word(12));
        if caplen > MAX_RECORD_LEN {
            return Err(self.err(at, PcapErrorKind::RecordTooLarge { caplen }));
        }
        if caplen > orig_len {
            return Err(self.err(at, PcapErrorKind::CaplenExceedsOrigLen { caplen, orig_len }));
        }
        let mut data = vec![0u8; caplen as usize];
        let got = read_full(&mut self.inner, &mut data)
            .map_err(|e| self.err(at + RECORD_HEADER_LEN as u64, PcapErrorKind::Io(e)))?;
        if got < data.len() {
            return Err(self.err(
                at + RECORD_HEADER_LEN as u64,
                PcapErrorKind::TruncatedRecordData { caplen, got },
            ));
        }
        self.offset = at + (RECORD_HEADER_LEN + data.len()) as u64;
        let frac_ns = match self.resolution {
            TsResolution::Micro => u64::from(frac) * 1_000,
            TsResolution::Nano => u64::from(frac),
        };
        Ok(Some(Record {
            ts_ns: u64::from(sec) * 1_000_000_000 + frac_ns,
            orig_len,
            data,
        }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<Record, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads every record of `path`.
pub fn read_file(path: &Path) -> Result<Vec<Record>, PcapError> {
    PcapReader::open(path)?.collect()
}

/// Writes `packets` to `path`.
pub fn write_file(
    path: &Path,
    resolution: TsResolution,
    packets: &[crate::Packet],
) -> Result<(), PcapError> {
    let mut w = PcapWriter::create(path, resolution)?;
    for p in packets {
        w.write_packet(p.ts_ns, &p.data)?;
    }
    w.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_mem(resolution: TsResolution, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), "mem", resolution).unwrap();
        for (ts, d) in records {
            w.write_packet(*ts, d).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn global_header_bytes_match_libpcap() {
        let bytes = write_mem(TsResolution::Micro, &[]);
        // The same 24 bytes `tcpdump -w` writes on x86 for an Ethernet capture.
        assert_eq!(
            bytes,
            [
                0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                0x00, 0x00, 0x01, 0x00, 0x00, 0x00
            ]
        );
        let r = PcapReader::new(&bytes[..], "mem").unwrap();
        assert_eq!(r.linktype(), LINKTYPE_ETHERNET);
        assert_eq!(r.snaplen(), 65535);
    }

    #[test]
    fn round_trip_micro_and_nano() {
        let recs = vec![
            (1_700_000_000_123_456_789u64, vec![1, 2, 3]),
            (1_700_000_001_000_000_000, vec![0xff; 60]),
        ];
        let micro = write_mem(TsResolution::Micro, &recs);
        let got: Vec<Record> = PcapReader::new(&micro[..], "m")
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_000);
        assert_eq!(got[0].data, vec![1, 2, 3]);
        assert_eq!(got[1].orig_len, 60);
        let nano = write_mem(TsResolution::Nano, &recs);
        let r = PcapReader::new(&nano[..], "n").unwrap();
        assert_eq!(r.resolution(), TsResolution::Nano);
        let got: Vec<Record> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_789);
    }

    /// Converts a little-endian file to big-endian, as a SPARC tcpdump wrote.
    fn to_big_endian(le: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let swap32 = |b: &[u8]| [b[3], b[2], b[1], b[0]];
        out.extend_from_slice(&swap32(&le[0..4]));
        out.extend_from_slice(&[le[5], le[4], le[7], le[6]]);
        for i in (8..24).step_by(4) {
            out.extend_from_slice(&swap32(&le[i..i + 4]));
        }
        let mut at = 24;
        while at < le.len() {
            for i in 0..4 {
                out.extend_from_slice(&swap32(&le[at + 4 * i..at + 4 * i + 4]));
            }
            let caplen =
                u32::from_le_bytes([le[at + 8], le[at + 9], le[at + 10], le[at + 11]]) as usize;
            out.extend_from_slice(&le[at + 16..at + 16 + caplen]);
            at += 16 + caplen;
        }
        out
    }

    #[test]
    fn reads_big_endian_files() {
        for res in [TsResolution::Micro, TsResolution::Nano] {
            let le = write_mem(res, &[(5_000_000_007_000, vec![9; 14])]);
            let be = to_big_endian(&le);
            let mut r = PcapReader::new(&be[..], "be").unwrap();
            assert!(r.is_swapped());
            assert_eq!(r.resolution(), res);
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(rec.data, vec![9; 14]);
            // 5000 s + 7 µs is exact in both resolutions.
            assert_eq!(rec.ts_ns, 5_000_000_007_000);
            assert!(r.next_record().unwrap().is_none());
        }
    }

    #[test]
    fn errors_are_one_line_and_precise() {
        let good = write_mem(TsResolution::Micro, &[(0, vec![7; 100])]);
        let e = PcapReader::new(&good[..10], "foo.pcap").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pcap foo.pcap: truncated global header: 10 of 24 bytes (not a pcap file?)"
        );

        let mut r = PcapReader::new(&good[..30], "foo.pcap").unwrap();
        assert_eq!(
            r.next_record().unwrap_err().to_string(),
            "pcap foo.pcap: truncated record header at byte 24: 6 of 16 bytes"
        );
        let mut r = PcapReader::new(&good[..60], "foo.pcap").unwrap();
        assert_eq!(
            r.next_record().unwrap_err().to_string(),
            "pcap foo.pcap: truncated record data at byte 40: header announced 100 bytes, file has 20"
        );

        let mut huge = good.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(&huge[..], "foo.pcap").unwrap();
        assert!(matches!(
            r.next_record().unwrap_err().kind,
            PcapErrorKind::RecordTooLarge { caplen: u32::MAX }
        ));

        let mut longer = good.clone();
        longer[24 + 12..24 + 16].copy_from_slice(&50u32.to_le_bytes());
        let mut r = PcapReader::new(&longer[..], "x").unwrap();
        assert!(matches!(
            r.next_record().unwrap_err().kind,
            PcapErrorKind::CaplenExceedsOrigLen { .. }
        ));

        let mut ng = good.clone();
        ng[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        let e = PcapReader::new(&ng[..], "capture.pcapng").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pcap capture.pcapng: bad magic 0x0a0d0d0a: not a classic pcap file (pcapng is not supported)"
        );

        let mut v = good.clone();
        v[4] = 1;
        assert!(matches!(
            PcapReader::new(&v[..], "x").unwrap_err().kind,
            PcapErrorKind::UnsupportedVersion { major: 1, minor: 4 }
        ));
    }

    #[test]
    fn iterator_stops_after_error() {
        let good = write_mem(TsResolution::Micro, &[(0, vec![7; 10]), (1, vec![8; 10])]);
        let items: Vec<_> = PcapReader::new(&good[..good.len() - 3], "x")
            .unwrap()
            .collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }

    #[test]
    fn writer_rejects_unrepresentable_timestamps() {
        let mut w = PcapWriter::new(Vec::new(), "w", TsResolution::Micro).unwrap();
        let e = w.write_packet(u64::MAX, &[0]).unwrap_err();
        assert!(matches!(e.kind, PcapErrorKind::TimestampOutOfRange(_)));
    }
}
