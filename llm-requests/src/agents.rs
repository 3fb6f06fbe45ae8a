//! Shared-prefix agents: personas and their multi-turn sessions, and the
//! chat-completion requests they send (sans-IO).
//!
//! An agent persona has a system prompt and tool definitions that it
//! repeats at the head of every call; it talks in sessions whose history
//! (each earlier turn's user message and answer) grows turn by turn. That
//! repetition is what an inference server's prefix cache serves, and
//! what a router's prefix affinity is for.
//!
//! One definition for the simulator (`sim`, which needs only the sizes:
//! [`Sessions::next_call`]) and the live agent (`emulator agent
//! --agent-fraction`, which also renders the text: [`Persona`],
//! [`agent_request`]), so both draw the same sessions from the same
//! generator.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokenfeat::{Hints, TaskType, TokenFeatures};

use crate::seeded_rng;
use crate::text::{http_post, push_sentences, WORDS};

/// Agents whose calls share a prefix: each persona has a system prompt
/// plus tool definitions of `prefix_tokens`, repeated on every call, and
/// talks in multi-turn sessions whose history grows by each turn's user
/// message and answer. Sizes are uniform in the inclusive ranges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AgentMix {
    /// Agent personas (distinct shared prefixes).
    pub personas: u32,
    /// A persona's system prompt and tools, tokens, [lo, hi].
    pub prefix_tokens: [u32; 2],
    /// A turn's new user message, tokens, [lo, hi].
    pub user_tokens: [u32; 2],
    /// A turn's answer, tokens, [lo, hi].
    pub output_tokens: [u32; 2],
    /// Turns per session, [lo, hi].
    pub turns: [u32; 2],
    /// Sessions open at once per site: an agent call continues one of
    /// them, picked at random, or starts a new one in a finished one's
    /// place.
    pub open_sessions: u32,
    /// Whether agents name their shared prefix in the feature ID (layout
    /// version 2); `false` sends version 1, for comparison: the gateway
    /// then cannot tell which prefix a call shares.
    #[serde(default = "yes")]
    pub name_prefix: bool,
}

fn yes() -> bool {
    true
}

impl Default for AgentMix {
    fn default() -> Self {
        AgentMix {
            personas: 20,
            prefix_tokens: [2000, 8000],
            user_tokens: [20, 200],
            output_tokens: [50, 300],
            turns: [2, 8],
            open_sessions: 64,
            name_prefix: true,
        }
    }
}

fn mean(r: [u32; 2]) -> f64 {
    (f64::from(r[0]) + f64::from(r[1])) / 2.0
}

/// A uniform draw from the inclusive range `r` (either order).
pub fn uniform<R: Rng + ?Sized>(rng: &mut R, r: [u32; 2]) -> u32 {
    let (lo, hi) = (r[0].min(r[1]), r[0].max(r[1]));
    rng.gen_range(lo..=hi)
}

impl AgentMix {
    /// Mean (prompt, output) tokens of an agent call: the prefix, the
    /// history before the mean turn (half the mean number of turns before
    /// it, each a user message and an answer) and the user message.
    pub fn mean(&self) -> (f64, f64) {
        let (user, out) = (mean(self.user_tokens), mean(self.output_tokens));
        let earlier_turns = (mean(self.turns) - 1.0).max(0.0) / 2.0;
        (
            mean(self.prefix_tokens) + earlier_turns * (user + out) + user,
            out,
        )
    }

    /// Each persona's system prompt and tools, tokens: one draw each.
    pub fn persona_tokens<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
        (0..self.personas)
            .map(|_| uniform(rng, self.prefix_tokens))
            .collect()
    }

    /// Checks the numbers; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.personas == 0 || self.open_sessions == 0 || self.turns[0] == 0 {
            return Err("agents need personas, open_sessions and turns >= 1".into());
        }
        for (n, r) in [
            ("agents.prefix_tokens", self.prefix_tokens),
            ("agents.user_tokens", self.user_tokens),
            ("agents.output_tokens", self.output_tokens),
            ("agents.turns", self.turns),
        ] {
            if r[0] > r[1] {
                return Err(format!("{n} [{}, {}] is empty", r[0], r[1]));
            }
        }
        Ok(())
    }
}

/// One agent call: a turn of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCall {
    /// The persona (index).
    pub persona: u32,
    /// Its system prompt and tools, tokens.
    pub prefix_tokens: u32,
    /// The session's id.
    pub session: u64,
    /// Earlier turns of the session, oldest first: (user message, answer)
    /// tokens. This call is turn `earlier.len()`.
    pub earlier: Vec<(u32, u32)>,
    /// This turn's user message, tokens.
    pub user_tokens: u32,
    /// This turn's answer (`max_tokens`), tokens.
    pub output_tokens: u32,
}

impl AgentCall {
    /// Tokens of the earlier turns.
    pub fn history_tokens(&self) -> u32 {
        self.earlier.iter().map(|&(u, o)| u + o).sum()
    }

    /// Prompt tokens: the prefix, the history and the user message.
    pub fn prompt_tokens(&self) -> u32 {
        self.prefix_tokens + self.history_tokens() + self.user_tokens
    }

    /// The session's history after this turn, tokens.
    pub fn history_after(&self) -> u32 {
        self.history_tokens() + self.user_tokens + self.output_tokens
    }
}

#[derive(Debug, Clone, Default)]
struct Session {
    id: u64,
    persona: u32,
    /// Turns it will have; 0: an empty slot.
    turns: u32,
    earlier: Vec<(u32, u32)>,
}

/// The open sessions of one stream of agent calls.
#[derive(Debug, Clone)]
pub struct Sessions {
    slots: Vec<Session>,
    next_id: u64,
}

impl Sessions {
    /// No session open yet; ids are handed out after `first_id` (so that
    /// several streams, e.g. the simulator's sites, have distinct ids).
    pub fn new(first_id: u64) -> Sessions {
        Sessions {
            slots: Vec::new(),
            next_id: first_id,
        }
    }

    /// The next call: a turn of one of `a.open_sessions` sessions picked
    /// at random, or the first turn of a new session (random persona and
    /// length) in place of a finished one. `persona_tokens` is
    /// [`AgentMix::persona_tokens`].
    pub fn next_call<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        a: &AgentMix,
        persona_tokens: &[u32],
    ) -> AgentCall {
        let open = a.open_sessions.max(1) as usize;
        if self.slots.len() < open {
            self.slots.resize_with(open, Session::default);
        }
        let slot = rng.gen_range(0..open);
        let finished = !matches!(
            self.slots.get(slot),
            Some(s) if (s.earlier.len() as u32) < s.turns
        );
        if finished {
            self.next_id += 1;
            let fresh = Session {
                id: self.next_id,
                persona: rng.gen_range(0..a.personas.max(1)),
                turns: uniform(rng, a.turns).max(1),
                earlier: Vec::new(),
            };
            if let Some(s) = self.slots.get_mut(slot) {
                *s = fresh;
            }
        }
        let user = uniform(rng, a.user_tokens);
        let output = uniform(rng, a.output_tokens);
        let Some(s) = self.slots.get_mut(slot) else {
            unreachable!("slots were resized to open_sessions")
        };
        let call = AgentCall {
            persona: s.persona,
            prefix_tokens: persona_tokens.get(s.persona as usize).copied().unwrap_or(0),
            session: s.id,
            earlier: s.earlier.clone(),
            user_tokens: user,
            output_tokens: output,
        };
        s.earlier.push((user, output));
        call
    }
}

/// cl100k tokens per word of the generated prose (about 1.3 for English
/// text): the rendered text has `tokens / TOKENS_PER_WORD` words, and
/// tokenfeat counts what it really is.
pub const TOKENS_PER_WORD: f64 = 1.3;

fn words_for(tokens: u32) -> usize {
    (f64::from(tokens) / TOKENS_PER_WORD).round().max(1.0) as usize
}

/// The model agents ask for.
pub const AGENT_MODEL: &str = "llama-3.1-70b-instruct";

/// Tool definitions per persona.
const TOOLS_PER_PERSONA: u32 = 4;

/// SplitMix64: streams for the persona and message texts, so each text
/// depends only on what it is, never on the order calls are drawn in.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn text_rng(seed: u64, what: u64) -> ChaCha8Rng {
    seeded_rng(seed, mix(what))
}

/// A persona's shared prefix as text: its system prompt and its tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    /// The system message.
    pub system: String,
    /// The `tools` array.
    pub tools: serde_json::Value,
}

impl Persona {
    /// Persona `index` of `tokens` tokens (half system prompt, half tool
    /// descriptions), its text drawn from `seed`.
    pub fn new(seed: u64, index: u32, tokens: u32) -> Persona {
        let mut rng = text_rng(seed, (1 << 62) | u64::from(index));
        let mut system = format!("You are agent {index}, an operations assistant.");
        push_sentences(&mut system, &mut rng, WORDS, words_for(tokens / 2));
        let per_tool = words_for(tokens / 2 / TOOLS_PER_PERSONA);
        let tools = (0..TOOLS_PER_PERSONA)
            .map(|k| {
                let mut description = String::new();
                push_sentences(&mut description, &mut rng, WORDS, per_tool);
                serde_json::json!({
                    "type": "function",
                    "function": {
                        "name": format!("agent{index}_tool{k}"),
                        "description": description.trim_start(),
                        "parameters": {
                            "type": "object",
                            "properties": {"input": {"type": "string"}},
                            "required": ["input"],
                        },
                    },
                })
            })
            .collect();
        Persona {
            system,
            tools: serde_json::Value::Array(tools),
        }
    }

    /// Every persona of `a`, sized by `persona_tokens`.
    pub fn all(seed: u64, persona_tokens: &[u32]) -> Vec<Persona> {
        persona_tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| Persona::new(seed, u32::try_from(i).unwrap_or(u32::MAX), t))
            .collect()
    }
}

/// The text of turn `turn` of `session`: the user message (`answer`
/// false) or the answer, about `tokens` long. The same on every call that
/// repeats it, so the history is a prefix of every later turn's prompt.
fn turn_text(seed: u64, session: u64, turn: usize, answer: bool, tokens: u32) -> String {
    let what = (2 << 62) ^ (session << 17) ^ ((turn as u64) << 1) ^ u64::from(answer);
    let mut rng = text_rng(seed, what);
    let mut s = String::new();
    push_sentences(&mut s, &mut rng, WORDS, words_for(tokens));
    s.trim_start().to_owned()
}

/// The JSON body of `call`: the persona's system prompt, the earlier
/// turns (user, assistant), the new user message, the persona's tools,
/// `max_tokens` the answer's size, streamed.
pub fn agent_body(call: &AgentCall, persona: &Persona, seed: u64) -> String {
    let mut messages = vec![serde_json::json!({"role": "system", "content": persona.system})];
    for (turn, &(user, answer)) in call.earlier.iter().enumerate() {
        messages.push(serde_json::json!({
            "role": "user",
            "content": turn_text(seed, call.session, turn, false, user),
        }));
        messages.push(serde_json::json!({
            "role": "assistant",
            "content": turn_text(seed, call.session, turn, true, answer),
        }));
    }
    messages.push(serde_json::json!({
        "role": "user",
        "content": turn_text(seed, call.session, call.earlier.len(), false, call.user_tokens),
    }));
    serde_json::json!({
        "model": AGENT_MODEL,
        "messages": messages,
        "tools": persona.tools,
        "max_tokens": call.output_tokens,
        "stream": true,
    })
    .to_string()
}

/// The HTTP request of `call` to `host`.
pub fn agent_request(call: &AgentCall, persona: &Persona, seed: u64, host: &str) -> Vec<u8> {
    http_post(host, &agent_body(call, persona, seed))
}

/// The features an agent puts in the TLV for an agent call's JSON `body`:
/// tokens over the whole prompt, task chat (what agents' turns are, as the
/// simulator has them), the output tokenfeat expects for a chat turn capped
/// by `max_tokens` (the same rule as every other request's,
/// [`crate::request_features`]), and, when `name_prefix`, the shared
/// prefix (system prompt and tools) named: layout version 2.
pub fn agent_features(body: &[u8], name_prefix: bool) -> Option<TokenFeatures> {
    let req = tokenfeat::parse_openai_json(body)?;
    let hints = Hints {
        max_tokens: req.max_tokens,
        task: Some(TaskType::Chat),
        ..Hints::default()
    };
    let mut f = tokenfeat::extract_split(&req.prompt_text, &req.last_user_text, &hints);
    if name_prefix {
        f.prefix = tokenfeat::shared_prefix(&req.prefix_text);
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(seed: u64, n: usize) -> (Vec<u32>, Vec<AgentCall>) {
        let a = AgentMix::default();
        let mut rng = seeded_rng(seed, 7);
        let personas = a.persona_tokens(&mut rng);
        let mut s = Sessions::new(0);
        let calls = (0..n)
            .map(|_| s.next_call(&mut rng, &a, &personas))
            .collect();
        (personas, calls)
    }

    #[test]
    fn same_seed_same_calls_and_sizes_within_the_mix() {
        let a = AgentMix::default();
        let (p1, c1) = calls(5, 500);
        let (p2, c2) = calls(5, 500);
        assert_eq!((&p1, &c1), (&p2, &c2));
        assert_ne!(c1, calls(6, 500).1);
        assert!(p1.iter().all(|t| (2000..=8000).contains(t)));
        for c in &c1 {
            assert!(c.persona < a.personas);
            assert_eq!(c.prefix_tokens, p1[c.persona as usize]);
            assert!(c.earlier.len() < a.turns[1] as usize);
            assert!((20..=200).contains(&c.user_tokens));
            assert_eq!(
                c.prompt_tokens(),
                c.prefix_tokens + c.history_tokens() + c.user_tokens
            );
        }
    }

    #[test]
    fn a_session_grows_by_each_turn_and_ends() {
        let (_, c) = calls(1, 2000);
        let mut by_session: std::collections::BTreeMap<u64, Vec<&AgentCall>> = Default::default();
        for call in &c {
            by_session.entry(call.session).or_default().push(call);
        }
        let mut multi = 0;
        for turns in by_session.values() {
            for (k, t) in turns.iter().enumerate() {
                // Turn k carries the k turns before it, as they were sent.
                assert_eq!(t.earlier.len(), k);
                if k > 0 {
                    let before = turns[k - 1];
                    assert_eq!(t.history_tokens(), before.history_after());
                    assert_eq!(t.persona, before.persona);
                }
            }
            multi += usize::from(turns.len() > 1);
        }
        assert!(multi > 100, "{multi} sessions with more than one turn");
    }

    #[test]
    fn a_later_turn_repeats_the_earlier_prompt_and_names_the_same_prefix() {
        let (personas, c) = calls(3, 400);
        let texts = Persona::all(3, &personas);
        let first = c.iter().find(|x| x.earlier.len() == 1).unwrap();
        let second = c
            .iter()
            .find(|x| x.session == first.session && x.earlier.len() == 2)
            .unwrap();
        let p = &texts[first.persona as usize];
        let body = |x: &AgentCall| agent_body(x, p, 3);
        let (b1, b2) = (body(first), body(second));
        let m = |b: &str| -> serde_json::Value { serde_json::from_str(b).unwrap() };
        let (m1, m2) = (m(&b1), m(&b2));
        // System, turn 0 (user, answer), then the new user message.
        assert_eq!(m1["messages"].as_array().unwrap().len(), 4);
        assert_eq!(m2["messages"].as_array().unwrap().len(), 6);
        let (a1, a2) = (
            m1["messages"].as_array().unwrap(),
            m2["messages"].as_array().unwrap(),
        );
        assert_eq!(a1[..3], a2[..3]);
        assert_eq!(m1["tools"], m2["tools"]);
        assert_eq!(m1["max_tokens"], first.output_tokens);
        let (f1, f2) = (
            agent_features(b1.as_bytes(), true).unwrap(),
            agent_features(b2.as_bytes(), true).unwrap(),
        );
        assert_eq!(f1.prefix, f2.prefix);
        assert_eq!(tokenfeat::encode(&f1).version(), 2);
        assert_eq!(f1.task, TaskType::Chat);
        assert_eq!(
            f1.output_tokens,
            tokenfeat::default_output_tokens(TaskType::Chat, f1.prompt_tokens)
                .min(first.output_tokens)
        );
        assert!(f2.prompt_tokens > f1.prompt_tokens);
        // Another persona: another prefix. Unnamed: layout version 1.
        let other = c.iter().find(|x| x.persona != first.persona).unwrap();
        let bo = agent_body(other, &texts[other.persona as usize], 3);
        assert_ne!(
            agent_features(bo.as_bytes(), true).unwrap().prefix,
            f1.prefix
        );
        let unnamed = agent_features(b1.as_bytes(), false).unwrap();
        assert_eq!(unnamed.prefix, None);
        assert_eq!(tokenfeat::encode(&unnamed).version(), 1);
    }

    #[test]
    fn rendered_prefixes_have_about_the_drawn_tokens() {
        for tokens in [2000, 8000] {
            let p = Persona::new(1, 0, tokens);
            let text = format!("{}\n{}", p.system, p.tools);
            let n = f64::from(tokenfeat::count_tokens(&text));
            let want = f64::from(tokens);
            assert!(
                (0.75 * want..=1.35 * want).contains(&n),
                "{n} tokens for {tokens}"
            );
        }
    }
}
