//! An incremental HTTP/1.x request reader that classifies OpenAI-style
//! requests as their bytes arrive, for delayed binding ([`crate::splice`]).
//!
//! [`crate::infer`] reads one segment; real clients do not fit in one:
//! the OpenAI SDK sends its headers and its JSON body in separate
//! segments, curl waits for `100 Continue` before the body, bodies come
//! chunked or over hundreds of segments, and a keep-alive connection
//! carries request after request. [`RequestReader`] is fed the client's
//! bytes in order, in pieces of any size, and reports when the headers
//! end (so the caller can answer `Expect: 100-continue`) and when the
//! request ends, with its features. It never allocates, never panics and
//! keeps a fixed few hundred bytes of state, whatever the request's size.
//!
//! # What it reads
//!
//! * **Request line**: any method, a target, `HTTP/1.0` or `HTTP/1.1`;
//!   anything else is [`ReadEvent::NotHttp`] (the rest of the connection
//!   is not read).
//! * **Headers** (lines up to [`LINE_MAX`] bytes are examined, longer ones
//!   are skipped to their end): `Content-Length`, `Transfer-Encoding`
//!   (a final `chunked` coding frames the body; it wins over
//!   `Content-Length`, RFC 9112 §6.3), `Content-Type` (`application/json`,
//!   any parameters such as `charset` ignored), `Expect: 100-continue`.
//! * **Body**: `Content-Length` bytes, or chunks (sizes in hex, extensions
//!   ignored, trailers skipped) to the last chunk; without either, no
//!   body. Only the body of a `POST` with a JSON (or absent) content type
//!   is classified; the others are skipped by their framing.
//! * **JSON**, streamed, without building anything: the messages of
//!   `"messages"` (their `"role"`, and `"content"` as a string or an array
//!   of parts whose `"text"` strings are read, separated by a newline),
//!   the top-level `"prompt"` (legacy completions, read as the user's),
//!   and the top-level `"max_tokens"` / `"max_completion_tokens"`. Other
//!   keys (`"tools"`, `"system"`, `"model"`, …) are walked over; strings
//!   inside them are never classified. The top-level `"tools"` and the
//!   leading system messages' contents are hashed as they pass, for the
//!   request's shared prefix ([`crate::body_prefix`]).
//!
//! # What it estimates
//!
//! * **Prompt tokens**: the whole body's length, framing removed, by
//!   [`crate::infer`]'s rule (minus 96 bytes of JSON framing, 4 bytes per
//!   token): every message, the tools and the system prompt all count,
//!   as they all reach the model.
//! * **Task type** by `tokenfeat::classify`'s rules, shared with
//!   [`crate::infer`], on the **last user message**'s text (decoded JSON
//!   escapes, ASCII lower-cased); the control rule uses that message's
//!   own token estimate. Without a user message: chat.
//! * **Output tokens** and **urgency** as [`crate::infer`] does.
//! * **Shared prefix** of a request read to its end: see
//!   [`crate::body_prefix`].

use classifier::{TaskType, TokenFeatures};

use crate::body_prefix::{BodyPrefix, Target};
use crate::infer::{
    body_prompt_tokens, features_of, is_control_text, task_of, Scan, CONTROL_MAX_TOKENS,
    CONTROL_TEXT_MAX,
};

/// Header bytes per line examined (a longer line is skipped to its end).
pub const LINE_MAX: usize = 256;

/// JSON nesting tracked; deeper containers are walked as "other".
const DEPTH_MAX: usize = 32;

/// What feeding bytes produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEvent {
    /// The request's headers ended; `expect_continue` when the client
    /// waits for `100 Continue` before its body.
    HeadersDone {
        /// `Expect: 100-continue` was sent.
        expect_continue: bool,
    },
    /// The request ended. `features` is `None` when it was not an
    /// inferable request (not a `POST`, not JSON, no body).
    RequestDone {
        /// What was inferred.
        features: Option<TokenFeatures>,
    },
    /// Not HTTP/1.x, or a framing error: nothing more is read.
    NotHttp,
}

/// How much of the input one [`RequestReader::feed`] used, and what
/// happened at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes consumed; feed the rest again.
    pub consumed: usize,
    /// The event at `consumed`, if any.
    pub event: Option<ReadEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    RequestLine,
    Headers,
    Body { left: u64 },
    ChunkSize,
    ChunkData { left: u64 },
    ChunkDataEnd,
    Trailers,
    Failed,
}

/// One container of the JSON being walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The top-level object.
    Root,
    /// The `"messages"` array.
    Messages,
    /// One message object.
    Message,
    /// A message's `"content"` array of parts.
    Parts,
    /// One part object.
    Part,
    /// Anything else.
    Other,
}

/// The key whose value comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    None,
    Messages,
    Role,
    Content,
    Text,
    Prompt,
    MaxTokens,
    Stream,
    Tools,
    Other,
}

/// What the string being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    Key,
    Role,
    /// Text of the current message.
    Text,
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    Unicode { digits: u8, value: u32 },
}

/// The classified text of one message.
#[derive(Clone, Copy)]
struct MessageText {
    scan: Scan,
    start: [u8; CONTROL_TEXT_MAX],
    start_len: usize,
    /// More than [`CONTROL_TEXT_MAX`] bytes: never a control command.
    long: bool,
    any: bool,
}

impl MessageText {
    fn new() -> Self {
        MessageText {
            scan: Scan::new(),
            start: [0; CONTROL_TEXT_MAX],
            start_len: 0,
            long: false,
            any: false,
        }
    }

    fn feed(&mut self, b: u8) {
        self.any = true;
        self.scan.feed(b);
        match self.start.get_mut(self.start_len) {
            Some(slot) => {
                *slot = b;
                self.start_len += 1;
            }
            None => self.long = true,
        }
    }

    fn task(&self) -> TaskType {
        let mut scan = self.scan;
        scan.end_word();
        let tokens = scan.heuristic_tokens();
        let control = !self.long
            && tokens <= CONTROL_MAX_TOKENS
            && is_control_text(self.start.get(..self.start_len).unwrap_or(&[]));
        task_of(&scan, tokens, control)
    }
}

/// The streaming JSON walk of one body.
#[derive(Clone, Copy)]
struct Json {
    stack: [Ctx; DEPTH_MAX],
    /// Whether each open container is an object.
    objects: u32,
    depth: usize,
    key: Key,
    expect_key: bool,
    in_string: Option<Str>,
    escape: Escape,
    key_buf: [u8; 24],
    key_len: usize,
    role: [u8; 9],
    role_len: usize,
    current: MessageText,
    last_user: Option<MessageText>,
    /// Digits of `max_tokens` being read.
    number: Option<u64>,
    max_tokens: Option<u32>,
    /// The top-level `"stream"`, when given.
    stream: Option<bool>,
    /// The shared prefix's hash ([`crate::body_prefix`]).
    prefix: BodyPrefix,
}

impl Json {
    fn new() -> Self {
        Json {
            stack: [Ctx::Other; DEPTH_MAX],
            objects: 0,
            depth: 0,
            key: Key::None,
            expect_key: false,
            in_string: None,
            escape: Escape::None,
            key_buf: [0; 24],
            key_len: 0,
            role: [0; 9],
            role_len: 0,
            current: MessageText::new(),
            last_user: None,
            number: None,
            max_tokens: None,
            stream: None,
            prefix: BodyPrefix::new(),
        }
    }

    fn top(&self) -> Option<Ctx> {
        self.depth
            .checked_sub(1)
            .map(|d| self.stack.get(d).copied().unwrap_or(Ctx::Other))
    }

    fn in_object(&self) -> bool {
        self.depth
            .checked_sub(1)
            .is_some_and(|d| d < 32 && self.objects & (1 << d) != 0)
    }

    fn push(&mut self, ctx: Ctx, object: bool) {
        if let Some(slot) = self.stack.get_mut(self.depth) {
            *slot = ctx;
            if object {
                self.objects |= 1 << self.depth;
            } else {
                self.objects &= !(1 << self.depth);
            }
        }
        self.depth = self.depth.saturating_add(1);
        self.expect_key = object;
        self.key = Key::None;
        if ctx == Ctx::Message {
            self.current = MessageText::new();
            self.role_len = 0;
            self.prefix.message_start();
        }
    }

    fn pop(&mut self) {
        if self.top() == Some(Ctx::Message) {
            let role = self.role.get(..self.role_len);
            if role == Some(b"user") {
                self.last_user = Some(self.current);
            }
            self.prefix.message_end(role);
        }
        self.depth = self.depth.saturating_sub(1);
        self.key = Key::Other;
        self.expect_key = false;
    }

    /// The context a value opening here gets.
    fn child(&self, object: bool) -> Ctx {
        match (self.top(), self.key, object) {
            (None, _, true) => Ctx::Root,
            (Some(Ctx::Root), Key::Messages, false) => Ctx::Messages,
            (Some(Ctx::Messages), _, true) => Ctx::Message,
            (Some(Ctx::Message), Key::Content, false) => Ctx::Parts,
            (Some(Ctx::Parts), _, true) => Ctx::Part,
            _ => Ctx::Other,
        }
    }

    fn string_kind(&self) -> Str {
        if self.in_object() && self.expect_key {
            return Str::Key;
        }
        match (self.top(), self.key) {
            (Some(Ctx::Message), Key::Role) => Str::Role,
            (Some(Ctx::Message), Key::Content)
            | (Some(Ctx::Parts), _)
            | (Some(Ctx::Part), Key::Text)
            | (Some(Ctx::Root), Key::Prompt) => Str::Text,
            _ => Str::Ignored,
        }
    }

    fn end_number(&mut self) {
        if let Some(n) = self.number.take() {
            self.max_tokens = Some(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    /// Walks byte `b`, hashing it into the shared prefix when it belongs
    /// to the tools or a message's content.
    fn feed(&mut self, b: u8) {
        let target = self.prefix_target(b);
        if let Some(t) = target {
            self.prefix.open(t, self.depth, b);
        }
        self.walk(b);
        if self.prefix.capturing() {
            self.prefix
                .byte(b, target.is_some(), self.depth, self.in_string.is_some());
        }
    }

    /// The prefix value `b` opens, if it opens one: a string, array or
    /// object as the value of the top-level `"tools"` or of a message's
    /// `"content"`.
    #[inline]
    fn prefix_target(&self, b: u8) -> Option<Target> {
        if self.prefix.capturing()
            || self.in_string.is_some()
            || !matches!(b, b'"' | b'[' | b'{')
            || (self.in_object() && self.expect_key)
        {
            return None;
        }
        match (self.top(), self.key) {
            (Some(Ctx::Root), Key::Tools) => Some(Target::Tools),
            (Some(Ctx::Message), Key::Content) => Some(Target::Content),
            _ => None,
        }
    }

    fn walk(&mut self, b: u8) {
        if let Some(kind) = self.in_string {
            self.string_byte(kind, b);
            return;
        }
        if let Some(n) = self.number {
            if b.is_ascii_digit() {
                self.number = Some(n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
                return;
            }
            self.end_number();
        }
        match b {
            b'{' | b'[' => {
                let object = b == b'{';
                let ctx = self.child(object);
                self.push(ctx, object);
            }
            b'}' | b']' => self.pop(),
            b'"' => {
                let kind = self.string_kind();
                if kind == Str::Text && self.current.any {
                    // Parts of one message are read as one text.
                    self.current.feed(b'\n');
                }
                if kind == Str::Text && self.top() == Some(Ctx::Root) {
                    // A completions prompt: the user's text.
                    self.current = MessageText::new();
                }
                if kind == Str::Key {
                    self.key_len = 0;
                }
                self.in_string = Some(kind);
                self.escape = Escape::None;
            }
            b':' => self.expect_key = false,
            b',' => {
                self.expect_key = self.in_object();
                if self.in_object() {
                    self.key = Key::None;
                }
            }
            b'0'..=b'9' if self.top() == Some(Ctx::Root) && self.key == Key::MaxTokens => {
                self.number = Some(u64::from(b - b'0'));
            }
            b't' | b'f' if self.top() == Some(Ctx::Root) && self.key == Key::Stream => {
                self.stream = Some(b == b't');
                self.key = Key::Other;
            }
            _ => {}
        }
    }

    fn string_byte(&mut self, kind: Str, b: u8) {
        let decoded = match self.escape {
            Escape::None => match b {
                b'"' => {
                    self.in_string = None;
                    self.end_string(kind);
                    return;
                }
                b'\\' => {
                    self.escape = Escape::Backslash;
                    return;
                }
                other => other,
            },
            Escape::Backslash => {
                self.escape = Escape::None;
                match b {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' | b'f' => b' ',
                    b'u' => {
                        self.escape = Escape::Unicode {
                            digits: 0,
                            value: 0,
                        };
                        return;
                    }
                    other => other,
                }
            }
            Escape::Unicode { digits, value } => {
                let value = value * 16 + char::from(b).to_digit(16).unwrap_or(0);
                if digits < 3 {
                    self.escape = Escape::Unicode {
                        digits: digits + 1,
                        value,
                    };
                    return;
                }
                self.escape = Escape::None;
                match u8::try_from(value) {
                    Ok(c) if c.is_ascii() => c,
                    _ => 0x80,
                }
            }
        };
        let lower = decoded.to_ascii_lowercase();
        match kind {
            Str::Key => {
                if let Some(slot) = self.key_buf.get_mut(self.key_len) {
                    *slot = decoded;
                }
                self.key_len = self.key_len.saturating_add(1);
            }
            Str::Role => {
                if let Some(slot) = self.role.get_mut(self.role_len) {
                    *slot = lower;
                }
                self.role_len = self.role_len.saturating_add(1);
            }
            Str::Text => self.current.feed(lower),
            Str::Ignored => {}
        }
    }

    fn end_string(&mut self, kind: Str) {
        match kind {
            Str::Key => {
                let name = self.key_buf.get(..self.key_len).unwrap_or(&[]);
                self.key = match (self.top(), name) {
                    (Some(Ctx::Root), b"messages") => Key::Messages,
                    (Some(Ctx::Root), b"prompt") => Key::Prompt,
                    (Some(Ctx::Root), b"max_tokens" | b"max_completion_tokens") => Key::MaxTokens,
                    (Some(Ctx::Root), b"stream") => Key::Stream,
                    (Some(Ctx::Root), b"tools") => Key::Tools,
                    (Some(Ctx::Message), b"role") => Key::Role,
                    (Some(Ctx::Message), b"content") => Key::Content,
                    (Some(Ctx::Part), b"text") => Key::Text,
                    _ => Key::Other,
                };
            }
            Str::Text if self.top() == Some(Ctx::Root) => {
                self.last_user = Some(self.current);
            }
            _ => {}
        }
    }
}

/// Reads one client's requests, in order, one after another (see the
/// module documentation).
#[derive(Clone, Copy)]
pub struct RequestReader {
    state: State,
    line: [u8; LINE_MAX],
    line_len: usize,
    /// The last bytes of the current line (the request line's version).
    tail: u128,
    post: bool,
    json: bool,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
    body_bytes: u64,
    body: Json,
    requests: u32,
    /// Whether the last finished request asked for a streamed answer.
    last_streaming: bool,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader::new()
    }
}

impl RequestReader {
    /// A reader waiting for a request line.
    pub fn new() -> Self {
        RequestReader {
            state: State::RequestLine,
            line: [0; LINE_MAX],
            line_len: 0,
            tail: 0,
            post: false,
            json: true,
            content_length: None,
            chunked: false,
            expect_continue: false,
            body_bytes: 0,
            body: Json::new(),
            requests: 0,
            last_streaming: false,
        }
    }

    /// Whether the request last finished asked for a streamed answer
    /// (`"stream": true`; OpenAI's default is a whole answer), or, while
    /// one is being read, whether it does so far.
    pub fn streaming(&self) -> bool {
        if self.idle() {
            self.last_streaming
        } else {
            self.body.stream == Some(true)
        }
    }

    /// Requests completed so far.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Body bytes of the current request read so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// True between requests (nothing of the next one read yet).
    pub fn idle(&self) -> bool {
        self.state == State::RequestLine && self.line_len == 0
    }

    /// Stops reading (the caller missed bytes): nothing more is read.
    pub fn abandon(&mut self) {
        self.state = State::Failed;
    }

    /// True once the reader gave up ([`ReadEvent::NotHttp`]).
    pub fn failed(&self) -> bool {
        self.state == State::Failed
    }

    /// The features of what was read of the current request so far: for
    /// a caller that must decide before the request ends (a bound was
    /// hit). `None` unless it is an inferable request whose body started.
    pub fn features_so_far(&self) -> Option<TokenFeatures> {
        let body_started = matches!(
            self.state,
            State::Body { .. } | State::ChunkSize | State::ChunkData { .. } | State::ChunkDataEnd
        );
        (body_started && self.post && self.json).then(|| self.features(true))
    }

    fn features(&self, partial: bool) -> TokenFeatures {
        // A body cut short is at least as long as its declared length.
        let bytes = match (partial, self.content_length, self.chunked) {
            (true, Some(n), false) => n.max(self.body_bytes),
            _ => self.body_bytes,
        };
        let prompt_tokens = body_prompt_tokens(bytes);
        let task = match &self.body.last_user {
            Some(m) => m.task(),
            None if partial && self.body.current.any => {
                // The message being read is cut: never a control command.
                let mut m = self.body.current;
                m.long = true;
                m.task()
            }
            None => TaskType::Chat,
        };
        let mut f = features_of(task, prompt_tokens, self.body.max_tokens);
        // A request cut short may not have shown its tools yet (the SDK
        // writes them after the messages): no prefix rather than another
        // prefix's hash.
        if !partial {
            f.prefix = self.body.prefix.prefix(f.prompt_tokens);
        }
        f
    }

    fn fail(&mut self, consumed: usize) -> Fed {
        self.state = State::Failed;
        Fed {
            consumed,
            event: Some(ReadEvent::NotHttp),
        }
    }

    fn finish(&mut self, consumed: usize) -> Fed {
        let inferable = self.post && self.json && self.body_bytes > 0;
        let features = inferable.then(|| {
            let mut body = self.body;
            body.end_number();
            self.body = body;
            self.features(false)
        });
        let requests = self.requests.saturating_add(1);
        let streaming = self.body.stream == Some(true);
        *self = RequestReader::new();
        self.requests = requests;
        self.last_streaming = streaming;
        Fed {
            consumed,
            event: Some(ReadEvent::RequestDone { features }),
        }
    }

    fn body_byte(&mut self, b: u8) {
        self.body_bytes += 1;
        if self.post && self.json {
            self.body.feed(b);
        }
    }

    /// Reads `data` up to the next event (or all of it). Call again with
    /// `data[consumed..]` after an event.
    pub fn feed(&mut self, data: &[u8]) -> Fed {
        let mut i = 0usize;
        while let Some(&b) = data.get(i) {
            match self.state {
                State::Failed => {
                    return Fed {
                        consumed: data.len(),
                        event: None,
                    }
                }
                State::RequestLine | State::Headers | State::ChunkSize | State::Trailers => {
                    i += 1;
                    if b != b'\n' {
                        if let Some(slot) = self.line.get_mut(self.line_len) {
                            *slot = b;
                        }
                        self.line_len = self.line_len.saturating_add(1);
                        self.tail = (self.tail << 8) | u128::from(b);
                        // A request line or header must come in a bounded
                        // number of bytes; a client that never ends one
                        // is not HTTP (bounded by the caller's buffer too).
                        if self.line_len > 64 * 1024 {
                            return self.fail(i);
                        }
                        continue;
                    }
                    if let Some(fed) = self.end_line(i) {
                        return fed;
                    }
                }
                State::Body { left } => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(data.len() - i);
                    for &b in data.get(i..i + take).unwrap_or(&[]) {
                        self.body_byte(b);
                    }
                    i += take;
                    let left = left - take as u64;
                    self.state = State::Body { left };
                    if left == 0 {
                        return self.finish(i);
                    }
                }
                State::ChunkData { left } => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(data.len() - i);
                    for &b in data.get(i..i + take).unwrap_or(&[]) {
                        self.body_byte(b);
                    }
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData { left }
                    };
                }
                State::ChunkDataEnd => {
                    // The CRLF after a chunk's data, read as a line.
                    i += 1;
                    if b == b'\n' {
                        self.state = State::ChunkSize;
                        self.line_len = 0;
                    }
                }
            }
        }
        Fed {
            consumed: data.len(),
            event: None,
        }
    }

    /// A line ended (at `i`, just past its LF).
    fn end_line(&mut self, i: usize) -> Option<Fed> {
        let len = self.line_len.min(LINE_MAX);
        let mut line = [0u8; LINE_MAX];
        if let (Some(dst), Some(src)) = (line.get_mut(..len), self.line.get(..len)) {
            dst.copy_from_slice(src);
        }
        let complete = self.line_len <= LINE_MAX;
        let tail = self.tail;
        self.line_len = 0;
        self.tail = 0;
        let line = line.get(..len).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let tail = if tail & 0xff == u128::from(b'\r') {
            tail >> 8
        } else {
            tail
        } as u64;
        match self.state {
            State::RequestLine => {
                if line.is_empty() && complete {
                    // RFC 9112 §2.2: empty lines before a request line
                    // are ignored.
                    return None;
                }
                let version = tail.to_be_bytes();
                if &version != b"HTTP/1.1" && &version != b"HTTP/1.0" {
                    return Some(self.fail(i));
                }
                let Some(sp) = line.iter().position(|&b| b == b' ') else {
                    return Some(self.fail(i));
                };
                self.post = line.get(..sp) == Some(b"POST");
                self.state = State::Headers;
                None
            }
            State::Headers => {
                if line.is_empty() {
                    return Some(self.headers_done(i));
                }
                if complete {
                    self.header(line);
                }
                None
            }
            State::ChunkSize => {
                let digits =
                    line.iter()
                        .take_while(|b| b.is_ascii_hexdigit())
                        .try_fold(0u64, |acc, &b| {
                            acc.checked_mul(16)?
                                .checked_add(u64::from(char::from(b).to_digit(16)?))
                        });
                let n_digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                match digits {
                    Some(0) if n_digits > 0 => {
                        self.state = State::Trailers;
                        None
                    }
                    Some(n) if n_digits > 0 => {
                        self.state = State::ChunkData { left: n };
                        None
                    }
                    _ => Some(self.fail(i)),
                }
            }
            State::Trailers => {
                if line.is_empty() {
                    return Some(self.finish(i));
                }
                None
            }
            _ => None,
        }
    }

    fn header(&mut self, line: &[u8]) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = line.get(..colon).unwrap_or(&[]);
        let value = trim(line.get(colon + 1..).unwrap_or(&[]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = value.iter().try_fold(0u64, |acc, &b| {
                if !b.is_ascii_digit() {
                    return None;
                }
                acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            });
            if !value.is_empty() {
                self.content_length = n;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding frames the message.
            let last = value.rsplit(|&b| b == b',').next().map(trim).unwrap_or(&[]);
            self.chunked = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let media = trim(value.split(|&b| b == b';').next().unwrap_or(&[]));
            self.json = media.eq_ignore_ascii_case(b"application/json");
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    fn headers_done(&mut self, i: usize) -> Fed {
        self.state = if self.chunked {
            State::ChunkSize
        } else {
            match self.content_length {
                Some(n) if n > 0 => State::Body { left: n },
                // No body: the request ends with its headers. The event
                // for the headers is folded into the end.
                _ => return self.finish(i),
            }
        };
        Fed {
            consumed: i,
            event: Some(ReadEvent::HeadersDone {
                expect_continue: self.expect_continue,
            }),
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` in order, collecting every event.
    fn events(reader: &mut RequestReader, pieces: &[&[u8]]) -> Vec<ReadEvent> {
        let mut out = Vec::new();
        for piece in pieces {
            let mut rest = *piece;
            loop {
                let fed = reader.feed(rest);
                out.extend(fed.event);
                rest = &rest[fed.consumed..];
                if rest.is_empty() {
                    break;
                }
            }
        }
        out
    }

    fn done(ev: &[ReadEvent]) -> Vec<TokenFeatures> {
        ev.iter()
            .filter_map(|e| match e {
                ReadEvent::RequestDone { features } => *features,
                _ => None,
            })
            .collect()
    }

    fn chat(body: &str, extra_headers: &str) -> String {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: vip\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn messages(last_user: &str) -> String {
        format!(
            r#"{{"model":"m","messages":[{{"role":"system","content":"You are helpful."}},{{"role":"user","content":"{last_user}"}}],"stream":true}}"#
        )
    }

    /// An agent's request as the OpenAI SDK writes it: messages first,
    /// tools after.
    fn agent_body(system: &str, tools: &str, turns: &[&str]) -> String {
        let mut msgs = format!(r#"{{"role":"system","content":"{system}"}}"#);
        for (i, t) in turns.iter().enumerate() {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            msgs.push_str(&format!(r#",{{"role":"{role}","content":"{t}"}}"#));
        }
        format!(r#"{{"messages":[{msgs}],"model":"gpt-4o","tools":{tools},"stream":true}}"#)
    }

    const TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#;

    fn system_prompt(topic: &str) -> String {
        format!("You are a careful assistant for {topic}. Answer briefly, cite your sources, and never invent facts. ").repeat(8)
    }

    fn prefix_of(req: &str) -> Option<classifier::SharedPrefix> {
        let f = done(&events(&mut RequestReader::new(), &[req.as_bytes()]));
        assert_eq!(f.len(), 1, "one request");
        f[0].prefix
    }

    fn fnv(h: u64, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }

    #[test]
    fn the_shared_prefix_is_the_hash_of_the_system_messages_and_tools_as_docs_say() {
        let system = system_prompt("travel");
        let req = chat(&agent_body(&system, TOOLS, &["Weather in Paris?"]), "");
        let p = prefix_of(&req).expect("a prefix");
        // Independently, from docs/wire-format.md §5.7: T over the tools
        // value, c over the system content with its quotes, S over c's
        // bytes, then FNV-1a over T and S, little-endian; 17 bits.
        const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        let t = fnv(BASIS, TOOLS.as_bytes());
        let content = format!("\"{system}\"");
        let c = fnv(BASIS, content.as_bytes());
        let s = fnv(BASIS, &c.to_le_bytes());
        let h = fnv(fnv(BASIS, &t.to_le_bytes()), &s.to_le_bytes());
        assert_eq!(p.hash, (h & 0x1_ffff) as u32);
        let tokens = (TOOLS.len() + content.len()) as u32 / 4;
        assert_eq!(p.tokens, classifier::token_feature::quantize_tokens(tokens));
    }

    #[test]
    fn same_system_and_tools_same_prefix_whatever_the_turns() {
        let system = system_prompt("travel");
        let first = prefix_of(&chat(
            &agent_body(&system, TOOLS, &["Weather in Paris?"]),
            "",
        ));
        let later = prefix_of(&chat(
            &agent_body(
                &system,
                TOOLS,
                &[
                    "Weather in Paris?",
                    "Sunny, 21 C.",
                    "And in Rome tomorrow? Plan a day there.",
                ],
            ),
            "",
        ));
        assert!(first.is_some());
        assert_eq!(first, later);
        // Another system prompt, or other tools: another prefix.
        let other_system = prefix_of(&chat(
            &agent_body(&system_prompt("cooking"), TOOLS, &["Weather in Paris?"]),
            "",
        ));
        assert_ne!(first.unwrap().hash, other_system.unwrap().hash);
        let no_tools = prefix_of(&chat(
            &agent_body(&system, "[]", &["Weather in Paris?"]),
            "",
        ));
        assert_ne!(first.unwrap().hash, no_tools.unwrap().hash);
        // Tools before the messages hash the same as after them, and a
        // message's content before its role the same as after it.
        let body = agent_body(&system, TOOLS, &["Hi"]);
        let reordered = format!(
            r#"{{"tools":{TOOLS},"messages":[{{"content":"{system}","role":"system"}},{{"role":"user","content":"Hi"}}],"model":"gpt-4o","stream":true}}"#
        );
        assert_eq!(
            prefix_of(&chat(&body, "")),
            prefix_of(&chat(&reordered, ""))
        );
    }

    #[test]
    fn only_the_leading_system_messages_count() {
        let system = system_prompt("travel");
        // No system message and no tools: no prefix.
        let plain = format!(r#"{{"messages":[{{"role":"user","content":"{system}"}}]}}"#);
        assert_eq!(prefix_of(&chat(&plain, "")), None);
        // A system message after the first user turn is not leading.
        let late = format!(
            r#"{{"messages":[{{"role":"user","content":"hi"}},{{"role":"system","content":"{system}"}}]}}"#
        );
        assert_eq!(prefix_of(&chat(&late, "")), None);
        // Two leading system/developer messages both count.
        let one = format!(
            r#"{{"messages":[{{"role":"system","content":"{system}"}},{{"role":"user","content":"hi"}}]}}"#
        );
        let two = format!(
            r#"{{"messages":[{{"role":"system","content":"{system}"}},{{"role":"Developer","content":[{{"type":"text","text":"Be terse."}}]}},{{"role":"user","content":"hi"}}]}}"#
        );
        let (one, two) = (
            prefix_of(&chat(&one, "")).unwrap(),
            prefix_of(&chat(&two, "")).unwrap(),
        );
        assert_ne!(one.hash, two.hash);
        assert!(two.tokens > one.tokens);
        // Under one KV block: none.
        let tiny = r#"{"messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"hi"}]}"#;
        assert_eq!(prefix_of(&chat(tiny, "")), None);
    }

    #[test]
    fn the_prefix_is_the_same_split_at_every_byte_and_chunked() {
        let body = agent_body(&system_prompt("travel"), TOOLS, &["Weather in Paris?"]);
        let req = chat(&body, "");
        let whole = prefix_of(&req);
        assert!(whole.is_some());
        let bytes = req.as_bytes();
        for at in 0..=bytes.len() {
            let f = done(&events(
                &mut RequestReader::new(),
                &[&bytes[..at], &bytes[at..]],
            ));
            assert_eq!(f[0].prefix, whole, "split at {at}");
        }
        // Chunked framing is not hashed: the same prefix.
        let mut chunked = String::from(
            "POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for piece in body.as_bytes().chunks(97) {
            chunked.push_str(&format!("{:x};ext=1\r\n", piece.len()));
            chunked.push_str(std::str::from_utf8(piece).unwrap());
            chunked.push_str("\r\n");
        }
        chunked.push_str("0\r\n\r\n");
        assert_eq!(prefix_of(&chunked), whole);
    }

    #[test]
    fn headers_then_body_in_separate_segments() {
        let req = chat(&messages("turn on the light"), "");
        let split = req.find("\r\n\r\n").unwrap() + 4;
        let mut r = RequestReader::new();
        let ev = events(
            &mut r,
            &[&req.as_bytes()[..split], &req.as_bytes()[split..]],
        );
        assert_eq!(
            ev[0],
            ReadEvent::HeadersDone {
                expect_continue: false
            }
        );
        let f = done(&ev);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].task, TaskType::ImmediateControl);
        assert_eq!(r.requests(), 1);
        assert!(r.idle());
        assert!(r.streaming(), "\"stream\": true");
    }

    #[test]
    fn body_byte_by_byte_is_the_same_as_whole() {
        let req = chat(
            &messages("Write a Python function that parses a CSV file and sums a column"),
            "",
        );
        let whole = done(&events(&mut RequestReader::new(), &[req.as_bytes()]));
        let bytes: Vec<&[u8]> = req.as_bytes().chunks(1).collect();
        let split = done(&events(&mut RequestReader::new(), &bytes));
        assert_eq!(whole, split);
        assert_eq!(whole[0].task, TaskType::CodeGeneration);
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let body = messages("prove that the square root of two is irrational");
        let (a, b) = body.split_at(30);
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Trailer: 1\r\n\r\n",
            a.len(),
            b.len()
        );
        let mut r = RequestReader::new();
        let f = done(&events(&mut r, &[req.as_bytes()]));
        assert_eq!(f.len(), 1, "{req}");
        assert_eq!(f[0].task, TaskType::ComplexReasoning);
        assert_eq!(
            f[0].prompt_tokens,
            classifier::token_feature::quantize_tokens(body_prompt_tokens(body.len() as u64))
        );
        assert!(r.idle());
    }

    #[test]
    fn expect_continue_and_charset() {
        let req = chat(
            &messages("switch off the fan"),
            "Expect: 100-continue\r\nX-Note: application/json; charset=utf-8\r\n",
        )
        .replace(
            "Content-Type: application/json",
            "Content-Type: application/json; charset=utf-8",
        );
        let ev = events(&mut RequestReader::new(), &[req.as_bytes()]);
        assert_eq!(
            ev[0],
            ReadEvent::HeadersDone {
                expect_continue: true
            }
        );
        assert_eq!(done(&ev)[0].task, TaskType::ImmediateControl);
    }

    #[test]
    fn non_json_content_type_is_not_classified() {
        let req = chat(&messages("turn on the light"), "")
            .replace("Content-Type: application/json", "Content-Type: text/plain");
        let ev = events(&mut RequestReader::new(), &[req.as_bytes()]);
        assert_eq!(ev.last(), Some(&ReadEvent::RequestDone { features: None }));
    }

    #[test]
    fn last_user_message_after_a_huge_tools_array_is_what_is_classified() {
        let tool = r#"{"type":"function","function":{"name":"write_code","description":"Write a Python function, implement and refactor code, debug the bug, unit test it. Summarise. Prove it step by step?","parameters":{"type":"object","properties":{}}}}"#;
        let tools = vec![tool; 1000].join(",");
        let body = format!(
            r#"{{"model":"m","tools":[{tools}],"messages":[{{"role":"system","content":"Write code in rust"}},{{"role":"user","content":"implement a parser"}},{{"role":"assistant","content":"done"}},{{"role":"user","content":[{{"type":"text","text":"turn on the light"}}]}}],"max_tokens":50}}"#
        );
        assert!(body.len() > 200 * 1024, "{}", body.len());
        let req = chat(&body, "");
        let pieces: Vec<&[u8]> = req.as_bytes().chunks(1448).collect();
        let f = done(&events(&mut RequestReader::new(), &pieces));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].task, TaskType::ImmediateControl);
        // Every byte counts toward the prompt (200 KiB / 4).
        assert!(f[0].prompt_tokens > 50_000, "{:?}", f[0]);
        assert!(f[0].output_tokens <= 50);
    }

    #[test]
    fn content_as_array_of_parts_and_roles_after_content() {
        let body = r#"{"messages":[{"content":[{"type":"text","text":"Summarise"},{"type":"text","text":"the key points of this memo"}],"role":"user"}]}"#;
        let f = done(&events(
            &mut RequestReader::new(),
            &[chat(body, "").as_bytes()],
        ));
        assert_eq!(f[0].task, TaskType::Summarisation);
    }

    #[test]
    fn escaped_quotes_and_unicode_do_not_derail_the_walk() {
        let body = r#"{"messages":[{"role":"user","content":"say \"}]\" then \u0054urn it \\"}]}"#;
        let f = done(&events(
            &mut RequestReader::new(),
            &[chat(body, "").as_bytes()],
        ));
        // "say ..." is not a control verb; the walk stayed in the message.
        assert_eq!(f[0].task, TaskType::Chat);
        let body = r#"{"messages":[{"role":"user","content":"\u0054urn on the light"}]}"#;
        let f = done(&events(
            &mut RequestReader::new(),
            &[chat(body, "").as_bytes()],
        ));
        assert_eq!(f[0].task, TaskType::ImmediateControl);
    }

    #[test]
    fn keep_alive_requests_are_each_classified() {
        let short = chat(&messages("turn on the light"), "");
        let long = chat(
            &messages("Write a function in Rust that implements a B-tree"),
            "",
        );
        let get = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
        let all = format!("{short}{get}{long}");
        let mut r = RequestReader::new();
        let ev = events(&mut r, &[all.as_bytes()]);
        let ends: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                ReadEvent::RequestDone { features } => Some(features.map(|f| f.task)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ends,
            vec![
                Some(TaskType::ImmediateControl),
                None,
                Some(TaskType::CodeGeneration)
            ]
        );
        assert_eq!(r.requests(), 3);
    }

    #[test]
    fn http_1_0_and_garbage() {
        let req = chat(&messages("turn on the light"), "").replace("HTTP/1.1", "HTTP/1.0");
        let f = done(&events(&mut RequestReader::new(), &[req.as_bytes()]));
        assert_eq!(f[0].task, TaskType::ImmediateControl);
        let mut r = RequestReader::new();
        let ev = events(
            &mut r,
            &[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"],
        );
        assert_eq!(ev, vec![ReadEvent::NotHttp]);
        assert!(r.failed());
        let ev = events(&mut r, &[b"POST / HTTP/1.1\r\n\r\n"]);
        assert!(ev.is_empty());
    }

    #[test]
    fn completions_prompt_and_partial_features() {
        let body = r#"{"model":"m","prompt":"write a program in go that sorts","max_tokens":64}"#;
        let mut r = RequestReader::new();
        let f = done(&events(&mut r, &[chat(body, "").as_bytes()]));
        assert_eq!(f[0].task, TaskType::CodeGeneration);
        assert_eq!(f[0].output_tokens, 64);
        assert!(!r.streaming(), "no \"stream\": a whole answer");
        // Cut in the middle of the last user message: decided on what was
        // seen, never as a control command.
        let req = chat(&messages("turn on the light and then"), "");
        let mut r = RequestReader::new();
        let cut = req.len() - 20;
        let ev = events(&mut r, &[&req.as_bytes()[..cut]]);
        assert!(done(&ev).is_empty());
        let f = r.features_so_far().unwrap();
        assert_ne!(f.task, TaskType::ImmediateControl);
    }
}
