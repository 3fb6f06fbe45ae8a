//! The HTTP/1.x server side of `emulator serve`, as real clients speak it:
//! the official OpenAI SDK (httpx: keep-alive, `Content-Length`), curl
//! (`Expect: 100-continue`, chunked bodies with `-H 'Transfer-Encoding:
//! chunked'`, `--http1.0`) and the project's own agent (`Connection:
//! close`).
//!
//! [`RequestReader`] reads one request at a time from a byte stream,
//! keeping what follows it (a pipelined next request) for the next call.
//! Everything is bounded: the head by [`Limits::max_head`], the body by
//! [`Limits::max_body`] (decoded size, for chunked bodies too), and a chunk
//! size line by its length; a request over a bound is an error the caller
//! answers with its status code.

use std::io::{self, Read, Write};

/// Bounds on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line and headers, bytes.
    pub max_head: usize,
    /// Body after transfer decoding, bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_body: 4 << 20,
        }
    }
}

/// HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the answer unless the client
    /// asked for `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: the connection stays open unless `Connection: close`.
    Http11,
}

/// One request, its body decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (`GET`, `POST`, ...).
    pub method: String,
    /// The request target without the query string.
    pub path: String,
    /// The version.
    pub version: Version,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body: `Content-Length` bytes, or the chunks joined.
    pub body: Vec<u8>,
    /// The connection may carry another request after this one's answer.
    pub keep_alive: bool,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read; [`Self::status`] is the answer.
#[derive(Debug)]
pub enum HttpError {
    /// The connection failed or timed out.
    Io(io::Error),
    /// The request line or a header is not HTTP/1.x.
    Malformed(&'static str),
    /// The head is longer than [`Limits::max_head`].
    HeadTooLarge,
    /// The body is longer than [`Limits::max_body`].
    BodyTooLarge,
    /// A transfer coding other than chunked.
    UnsupportedEncoding,
    /// The peer closed in the middle of a request.
    Truncated,
}

impl HttpError {
    /// The status line to answer with, if an answer makes sense.
    pub fn status(&self) -> Option<&'static str> {
        match self {
            HttpError::Io(_) | HttpError::Truncated => None,
            HttpError::Malformed(_) => Some("400 Bad Request"),
            HttpError::HeadTooLarge => Some("431 Request Header Fields Too Large"),
            HttpError::BodyTooLarge => Some("413 Payload Too Large"),
            HttpError::UnsupportedEncoding => Some("501 Not Implemented"),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Malformed(what) => write!(f, "malformed request: {what}"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::BodyTooLarge => f.write_str("request body too large"),
            HttpError::UnsupportedEncoding => {
                f.write_str("unsupported transfer coding (only chunked is)")
            }
            HttpError::Truncated => f.write_str("connection closed inside a request"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads requests one after another from one connection.
pub struct RequestReader {
    buf: Vec<u8>,
    limits: Limits,
}

impl RequestReader {
    /// A reader with `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            buf: Vec::with_capacity(8192),
            limits,
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    fn fill(&mut self, stream: &mut impl Read) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Takes `n` buffered bytes, reading until there are that many.
    fn take(&mut self, stream: &mut impl Read, n: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < n {
            if !self.fill(stream)? {
                return Err(HttpError::Truncated);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Takes one CRLF-terminated line (without the CRLF), at most `max`
    /// bytes long.
    fn line(&mut self, stream: &mut impl Read, max: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(HttpError::Malformed("line too long"));
            }
            if !self.fill(stream)? {
                return Err(HttpError::Truncated);
            }
        }
    }

    /// The next request, or `None` when the peer closed between requests.
    /// `Expect: 100-continue` is answered on `stream` before the body is
    /// read, as RFC 9110 §10.1.1 has a server do when it will read it.
    pub fn next<S: Read + Write>(&mut self, stream: &mut S) -> Result<Option<Request>, HttpError> {
        // Empty lines before a request are allowed (RFC 9112 §2.2).
        let head_end = loop {
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > self.limits.max_head {
                return Err(HttpError::HeadTooLarge);
            }
            if !self.fill(stream)? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::Truncated)
                };
            }
        };
        if head_end > self.limits.max_head {
            return Err(HttpError::HeadTooLarge);
        }
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let head = std::str::from_utf8(&head[..head_end])
            .map_err(|_| HttpError::Malformed("head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let mut parts = lines.next().unwrap_or_default().split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HttpError::Malformed("request line"));
        };
        let version = match version {
            "HTTP/1.1" => Version::Http11,
            "HTTP/1.0" => Version::Http10,
            _ => return Err(HttpError::Malformed("HTTP version")),
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(HttpError::Malformed("method"));
        }
        if !target.starts_with('/') {
            return Err(HttpError::Malformed("request target"));
        }
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or(HttpError::Malformed("header line"))?;
            if name.is_empty() || name.ends_with(' ') || name.ends_with('\t') {
                return Err(HttpError::Malformed("header name"));
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut request = Request {
            method: method.to_string(),
            path: target.split('?').next().unwrap_or(target).to_string(),
            version,
            headers,
            body: Vec::new(),
            keep_alive: false,
        };
        let connection = request
            .header("connection")
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let has_token = |t: &str| connection.split(',').any(|c| c.trim() == t);
        request.keep_alive = match version {
            Version::Http11 => !has_token("close"),
            Version::Http10 => has_token("keep-alive"),
        };

        let chunked = match request.header("transfer-encoding") {
            None => false,
            Some(te) if te.eq_ignore_ascii_case("chunked") => true,
            Some(_) => return Err(HttpError::UnsupportedEncoding),
        };
        let lengths: Vec<&str> = request
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.as_str())
            .collect();
        let length = match lengths.as_slice() {
            [] => None,
            [l] if !chunked => Some(
                l.parse::<usize>()
                    .map_err(|_| HttpError::Malformed("Content-Length"))?,
            ),
            // Both, or two lengths: the framing is ambiguous (RFC 9112 §6.3).
            _ => return Err(HttpError::Malformed("ambiguous message length")),
        };
        if length.is_some_and(|l| l > self.limits.max_body) {
            return Err(HttpError::BodyTooLarge);
        }
        let body_follows = chunked || length.is_some_and(|l| l > 0);
        let expects_continue = request
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        if body_follows && expects_continue && version == Version::Http11 && self.buf.is_empty() {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        request.body = if chunked {
            self.chunked_body(stream)?
        } else {
            self.take(stream, length.unwrap_or(0))?
        };
        Ok(Some(request))
    }

    /// A chunked body (RFC 9112 §7.1): size lines with optional extensions,
    /// the data, and trailer fields, which are read and dropped.
    fn chunked_body(&mut self, stream: &mut impl Read) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.line(stream, 1024)?;
            let line =
                std::str::from_utf8(&line).map_err(|_| HttpError::Malformed("chunk size"))?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size, 16).map_err(|_| HttpError::Malformed("chunk size"))?;
            if size == 0 {
                // Trailer section: lines until an empty one.
                let mut trailer_bytes = 0usize;
                loop {
                    let t = self.line(stream, self.limits.max_head)?;
                    if t.is_empty() {
                        return Ok(body);
                    }
                    trailer_bytes += t.len();
                    if trailer_bytes > self.limits.max_head {
                        return Err(HttpError::HeadTooLarge);
                    }
                }
            }
            if body.len().saturating_add(size) > self.limits.max_body {
                return Err(HttpError::BodyTooLarge);
            }
            let data = self.take(stream, size + 2)?;
            if !data.ends_with(b"\r\n") {
                return Err(HttpError::Malformed("chunk not followed by CRLF"));
            }
            body.extend_from_slice(&data[..size]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out its input a few bytes per read and records
    /// what is written to it.
    struct Trickle {
        input: Vec<u8>,
        at: usize,
        step: usize,
        written: Vec<u8>,
    }

    impl Trickle {
        fn new(input: &[u8], step: usize) -> Self {
            Trickle {
                input: input.to_vec(),
                at: 0,
                step,
                written: Vec::new(),
            }
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.input.len() - self.at);
            buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn read_all(input: &[u8], step: usize) -> (Vec<Result<Request, String>>, Vec<u8>) {
        let mut s = Trickle::new(input, step);
        let mut r = RequestReader::new(Limits {
            max_head: 256,
            max_body: 64,
        });
        let mut out = Vec::new();
        loop {
            match r.next(&mut s) {
                Ok(Some(req)) => out.push(Ok(req)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        (out, s.written)
    }

    #[test]
    fn keep_alive_requests_follow_each_other_whatever_the_segmentation() {
        let two = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /v1/models?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 3, 7, 1000] {
            let (reqs, written) = read_all(two, step);
            assert_eq!(reqs.len(), 2, "step {step}");
            let a = reqs[0].as_ref().unwrap();
            assert_eq!(
                (a.method.as_str(), a.path.as_str()),
                ("POST", "/v1/chat/completions")
            );
            assert_eq!(a.body, b"hello");
            assert!(a.keep_alive);
            let b = reqs[1].as_ref().unwrap();
            assert_eq!((b.method.as_str(), b.path.as_str()), ("GET", "/v1/models"));
            assert!(b.body.is_empty());
            assert!(written.is_empty());
        }
    }

    #[test]
    fn chunked_bodies_are_joined_with_extensions_and_trailers_dropped() {
        let req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in [1, 4, 1000] {
            let (reqs, _) = read_all(req, step);
            assert_eq!(
                reqs[0].as_ref().unwrap().body,
                b"hello world",
                "step {step}"
            );
        }
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body() {
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        // The head arrives alone, as curl sends it before waiting.
        let mut s = Trickle::new(&[head.as_slice(), b"hi"].concat(), head.len());
        let got = RequestReader::new(Limits::default())
            .next(&mut s)
            .unwrap()
            .unwrap();
        assert_eq!(got.body, b"hi");
        assert_eq!(s.written, b"HTTP/1.1 100 Continue\r\n\r\n");
        // A client that sent the body anyway gets no interim answer.
        let mut s = Trickle::new(&[head.as_slice(), b"hi"].concat(), 1000);
        RequestReader::new(Limits::default()).next(&mut s).unwrap();
        assert!(s.written.is_empty());
    }

    #[test]
    fn http_1_0_closes_unless_asked_and_1_1_keeps_unless_told() {
        let cases: [(&[u8], bool); 4] = [
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
        ];
        for (req, keep) in cases {
            let (reqs, _) = read_all(req, 1000);
            assert_eq!(reqs[0].as_ref().unwrap().keep_alive, keep, "{req:?}");
        }
    }

    #[test]
    fn bad_and_oversized_requests_are_errors_with_a_status() {
        let cases: [(&[u8], &str); 7] = [
            (b"BLAH\r\n\r\n", "400"),
            (b"GET / HTTP/2.0\r\n\r\n", "400"),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
                "400",
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", "413"),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501"),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n",
                "413",
            ),
        ];
        for (req, status) in cases {
            let mut s = Trickle::new(req, 1000);
            let mut r = RequestReader::new(Limits {
                max_head: 256,
                max_body: 64,
            });
            let e = r.next(&mut s).unwrap_err();
            assert!(e.status().unwrap().starts_with(status), "{req:?}: {e}");
        }
        let long = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 300]].concat();
        let mut s = Trickle::new(&long, 1000);
        let e = RequestReader::new(Limits {
            max_head: 256,
            max_body: 64,
        })
        .next(&mut s)
        .unwrap_err();
        assert!(matches!(e, HttpError::HeadTooLarge), "{e}");
    }

    #[test]
    fn a_close_inside_a_request_is_truncated_and_between_requests_is_the_end() {
        let (reqs, _) = read_all(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 1000);
        assert_eq!(reqs, vec![Err("connection closed inside a request".into())]);
        let (reqs, _) = read_all(b"", 1000);
        assert!(reqs.is_empty());
    }
}
