//! The request classifier: a probability per task class, the class it settles on, and the
//! evidence. A learned model ([`super::model`]: a distilled token-embedding table with a linear
//! head, trained offline by `tests/classifier/train.py`) reads the request's words per part
//! (instruction, pasted material, system prompt, earlier turns) and named features: the keyword
//! and shape scores ([`super::keywords`], a prior it learned to weigh) and the request's shape
//! (tools, images, JSON, length). Without a model the keyword rules decide alone.
//!
//! The model ships inside the binary; `[routing] classifier_model` loads another file, and a
//! change to that file is picked up without a restart ([`install`]).

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Once};

use arc_swap::ArcSwapOption;

use super::keywords::{self, SCORED, Tally};
use super::model::{EMBEDDED, Model};
use super::text::{ceil_char, floor_char};
use super::wordpiece::WordPiece;
pub use crate::task::Task;

/// What the classifier concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub task: Task,
    /// 0.0 - 1.0: the probability of `task`
    pub confidence: f32,
    /// per [`Task::ALL`] position; sums to 1
    pub probabilities: [f32; 8],
    /// the evidence, strongest first (at most a dozen)
    pub signals: Vec<String>,
}

impl Classification {
    /// Classes with a probability of at least `min`, most likely first.
    pub fn likely(&self, min: f32) -> Vec<(Task, f32)> {
        let mut v: Vec<(Task, f32)> =
            Task::ALL.iter().map(|t| (*t, self.probabilities[t.index()])).filter(|(_, p)| *p >= min).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// `reasoning 0.62, general 0.31`: the classes above 2 %, as the route header, the
    /// explanation and the policy's signals show them.
    pub fn probabilities_text(&self) -> String {
        let mut out = String::with_capacity(64);
        for (i, (t, p)) in self.likely(0.02).into_iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(t.as_str());
            out.push(' ');
            let hundredths = (p * 100.0).round() as u32;
            out.push_str(&format!("{}.{:02}", hundredths / 100, hundredths % 100));
        }
        out
    }
}

/// What the classifier reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// the last user message's text
    pub prompt: &'a str,
    /// system prompt text
    pub system: &'a str,
    /// earlier turns: the user message before the last and the assistant's reply to it
    pub context: &'a str,
    pub images: bool,
    pub tools: bool,
    pub json: bool,
}

/// The model's named features, in the order the model file lists them. The training script
/// reads these names from `freeway classifier-features`; a model naming others is refused.
pub const FEATURES: [&str; 13] = [
    "keywords for general",
    "keywords for code",
    "keywords for math",
    "keywords for reasoning",
    "keywords for creative",
    "keywords for extraction",
    "tools offered",
    "image attached",
    "JSON output requested",
    "pasted material",
    "earlier turns",
    "system prompt",
    "length",
];

/// Token windows per part: (bytes from the start, tokens), (bytes from the end, tokens).
const WINDOWS: [((usize, usize), (usize, usize)); 4] = [
    ((1_200, 192), (400, 64)), // instruction
    ((600, 96), (300, 48)),    // pasted material
    ((800, 128), (0, 0)),      // system prompt
    ((600, 96), (300, 48)),    // earlier turns
];

/// What the model reads of a request: token ids per part and the feature values.
#[derive(Default)]
pub struct Prepared {
    pub parts: [Vec<u32>; 4],
    pub features: [f32; FEATURES.len()],
    pub tally: Tally,
    piece: Vec<u32>,
}

/// The model in use: the one [`install`] put there, else the built-in one, parsed on first use.
static MODEL: ArcSwapOption<Model> = ArcSwapOption::const_empty();
static BUILT_IN: Once = Once::new();

thread_local! {
    static SCRATCH: RefCell<Prepared> = RefCell::new(Prepared::default());
}

/// The model in use.
pub fn current() -> Option<Arc<Model>> {
    if let Some(m) = MODEL.load_full() {
        return Some(m);
    }
    BUILT_IN.call_once(|| {
        if MODEL.load().is_none() {
            match Model::parse(EMBEDDED) {
                Ok(m) => MODEL.store(Some(Arc::new(m))),
                Err(e) => {
                    tracing::error!("the built-in task classifier does not load ({e}); keyword rules decide alone")
                }
            }
        }
    });
    MODEL.load_full()
}

/// Read a model file (`None`: the built-in one), checking that it fits this build.
pub fn load(path: Option<&Path>) -> Result<Model, String> {
    let model = match path {
        None => Model::parse(EMBEDDED)?,
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Model::parse(&bytes).map_err(|e| format!("{}: {e}", p.display()))?
        }
    };
    if model.features.iter().map(String::as_str).ne(FEATURES) {
        return Err(format!("the model's features {:?} are not this build's", model.features));
    }
    Ok(model)
}

/// Use `model` from the next request on.
pub fn install(model: Model) {
    MODEL.store(Some(Arc::new(model)));
}

/// Build the matchers and load the model now, and classify once so the first request finds
/// everything ready.
pub fn warm_up() {
    keywords::warm_up();
    let _ = classify(&Input { prompt: "warm up: write a function", ..Input::default() });
}

/// Token ids of `text`'s head (and tail, when long) into `out`.
fn encode(
    tokenizer: &WordPiece,
    text: &str,
    (head, tail): ((usize, usize), (usize, usize)),
    piece: &mut Vec<u32>,
    out: &mut Vec<u32>,
) {
    out.clear();
    if text.is_empty() {
        return;
    }
    let cut = floor_char(text, head.0);
    tokenizer.encode(&text[..cut], head.1, piece);
    out.extend_from_slice(piece);
    if tail.1 > 0 && text.len() > head.0 + tail.0 {
        let from = ceil_char(text, text.len() - tail.0);
        // start at a word
        let from = text[from..].find(char::is_whitespace).map_or(from, |i| from + i);
        tokenizer.encode(&text[from..], tail.1, piece);
        out.extend_from_slice(piece);
    }
}

/// Fill `out` with what the model reads of `input`, through `tokenizer`.
pub fn prepare_with(tokenizer: &WordPiece, input: &Input<'_>, out: &mut Prepared) {
    let (instruction, material) = keywords::parts(input.prompt);
    let texts = [instruction, material, input.system, input.context];
    let Prepared { parts, piece, .. } = out;
    for (i, text) in texts.iter().enumerate() {
        encode(tokenizer, text, WINDOWS[i], piece, &mut parts[i]);
    }
    out.tally = keywords::tally(instruction, material, input.system, input.json);
    let f = &mut out.features;
    for (i, s) in out.tally.scores.iter().enumerate() {
        f[i] = s.max(0.0).ln_1p();
    }
    let words = instruction.split_whitespace().take(2_000).count() as f32;
    let flags = [
        input.tools,
        input.images,
        input.json,
        !material.is_empty(),
        !input.context.trim().is_empty(),
        !input.system.trim().is_empty(),
    ];
    for (i, on) in flags.into_iter().enumerate() {
        f[SCORED.len() + i] = f32::from(u8::from(on));
    }
    f[FEATURES.len() - 1] = words.ln_1p() / 4.0;
}

/// Classify a request with the model in use.
pub fn classify(input: &Input<'_>) -> Classification {
    classify_with(current().as_deref(), input, false)
}

/// Classify with `model` (`None`: the keyword rules alone). `explain` adds the words that
/// weighed most to the evidence.
pub fn classify_with(model: Option<&Model>, input: &Input<'_>, explain: bool) -> Classification {
    let Some(model) = model else { return by_rules(input) };
    SCRATCH.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else { return by_rules(input) };
        prepare_with(&model.tokenizer, input, &mut s);
        let parts = [s.parts[0].as_slice(), &s.parts[1], &s.parts[2], &s.parts[3]];
        let scored = model.score(parts, &s.features, explain);
        let (task, confidence) = Task::ALL
            .iter()
            .map(|t| (*t, scored.probabilities[t.index()]))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((Task::General, 0.0));
        let mut c = Classification { task, confidence, probabilities: scored.probabilities, signals: Vec::new() };
        c.signals.push(format!("classes: {}", c.probabilities_text()));
        s.tally.signals(task, 4, &mut c.signals);
        for (points, what) in scored.evidence.iter().filter(|(_, w)| !w.starts_with("keywords for")).take(6) {
            c.signals.push(format!("{what} (+{points:.2})"));
        }
        c
    })
}

/// The keyword rules' verdict, when no model is loaded: the request's shape first (tools,
/// images), then the best-scored class.
fn by_rules(input: &Input<'_>) -> Classification {
    let certain = |task: Task, why: &str| {
        let mut probabilities = [0.0; 8];
        probabilities[task.index()] = 0.95;
        probabilities[Task::General.index()] += 0.05;
        Classification { task, confidence: 0.95, probabilities, signals: vec![why.to_owned()] }
    };
    if input.tools {
        return certain(Task::ToolUse, "tools in the request");
    }
    if input.images {
        return certain(Task::Vision, "image in the request");
    }
    if !keywords::ready() {
        return Classification {
            task: Task::General,
            confidence: 0.0,
            probabilities: [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            signals: vec!["classifier unavailable".into()],
        };
    }
    let (instruction, material) = keywords::parts(input.prompt);
    let tally = keywords::tally(instruction, material, input.system, input.json);
    let (task, confidence) = tally.verdict();
    let mut probabilities = [0.0; 8];
    probabilities[task.index()] = confidence;
    let rest = (1.0 - confidence) / 5.0;
    for t in SCORED.iter().filter(|t| **t != task) {
        probabilities[t.index()] = rest;
    }
    let mut signals = Vec::new();
    tally.signals(task, 12, &mut signals);
    Classification { task, confidence, probabilities, signals }
}

#[cfg(test)]
mod tests;
