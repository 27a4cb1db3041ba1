//! The learned task classifier's model: a static token-embedding table (distilled from
//! all-MiniLM-L6-v2) with a linear head folded into it, so each vocabulary token carries one
//! small score per class for each part of a request it can appear in (the instruction, pasted
//! material, the system prompt, earlier turns). A request's class scores are the mean of its
//! tokens' scores per part, plus named features (the keyword and shape evidence, the request's
//! shape) times their weights, plus a bias; a softmax with a fitted temperature makes them
//! probabilities.
//!
//! Trained offline by `tests/classifier/train.py`; the file is
//! `b"FWTC"`, version (u32 LE), header length (u32 LE), a JSON header, the vocabulary (one token
//! per line, id order), then the table (i8, token-major: parts x classes per token), dequantised
//! with the header's per-part, per-class scales.

use serde::Deserialize;

use super::wordpiece::WordPiece;
use crate::task::Task;

pub const MAGIC: &[u8; 4] = b"FWTC";
pub const VERSION: u32 = 1;

/// The parts of a request the model reads, in table order.
pub const PARTS: [&str; 4] = ["instruction", "material", "system", "context"];

/// The model file the build ships (`[routing] classifier_model` loads another).
pub static EMBEDDED: &[u8] = include_bytes!("../../assets/task-classifier.fwtc");

#[derive(Debug, Deserialize)]
struct Header {
    classes: Vec<String>,
    parts: Vec<String>,
    features: Vec<String>,
    vocab_size: usize,
    /// [part][class]
    scales: Vec<Vec<f32>>,
    /// [feature][class]
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
    temperature: f32,
    #[serde(default)]
    about: serde_json::Value,
}

pub struct Model {
    pub tokenizer: WordPiece,
    vocab: Vec<Box<str>>,
    /// class order of the scores: the model's classes mapped to [`Task`]
    classes: Vec<Task>,
    /// vocab x parts x classes
    table: Vec<i8>,
    scales: Vec<f32>,
    pub features: Vec<String>,
    weights: Vec<f32>,
    bias: Vec<f32>,
    temperature: f32,
    /// what the training script recorded (data, figures), shown by `freeway route --explain`
    pub about: serde_json::Value,
    pub bytes: usize,
}

/// One request's scores: probabilities per task and the evidence behind the top class.
pub struct Scored {
    pub probabilities: [f32; 8],
    /// (contribution to the top class, what)
    pub evidence: Vec<(f32, String)>,
}

impl Model {
    pub fn parse(bytes: &[u8]) -> Result<Model, String> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a Freeway task-classifier file")?;
        let (version, rest) = take_u32(rest)?;
        if version != VERSION {
            return Err(format!("model file version {version}; this build reads {VERSION}"));
        }
        let (len, rest) = take_u32(rest)?;
        let len = usize::try_from(len).map_err(|_| "header too large")?;
        let header = rest.get(..len).ok_or("truncated header")?;
        let header: Header = serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
        let rest = &rest[len..];
        let (vlen, rest) = take_u32(rest)?;
        let vlen = usize::try_from(vlen).map_err(|_| "vocabulary too large")?;
        let vocab_text = std::str::from_utf8(rest.get(..vlen).ok_or("truncated vocabulary")?)
            .map_err(|_| "vocabulary is not UTF-8")?;
        let vocab: Vec<Box<str>> = vocab_text.split('\n').map(Box::from).collect();
        let table_bytes = &rest[vlen..];
        let (np, nc) = (header.parts.len(), header.classes.len());
        if header.parts.iter().map(String::as_str).ne(PARTS) {
            return Err(format!("model parts {:?}, expected {PARTS:?}", header.parts));
        }
        if vocab.len() != header.vocab_size || table_bytes.len() != vocab.len() * np * nc {
            return Err(format!(
                "sizes disagree: {} tokens for {}, {} table bytes",
                vocab.len(),
                header.vocab_size,
                table_bytes.len()
            ));
        }
        let classes = header
            .classes
            .iter()
            .map(|c| Task::parse(c).ok_or_else(|| format!("unknown class {c}")))
            .collect::<Result<Vec<_>, _>>()?;
        let flat = |m: &[Vec<f32>], rows: usize, what: &str| -> Result<Vec<f32>, String> {
            if m.len() != rows || m.iter().any(|r| r.len() != nc) {
                return Err(format!("{what}: expected {rows} x {nc}"));
            }
            Ok(m.iter().flatten().copied().collect())
        };
        let scales = flat(&header.scales, np, "scales")?;
        let weights = flat(&header.weights, header.features.len(), "weights")?;
        if header.bias.len() != nc || header.temperature.is_nan() || header.temperature <= 0.0 || nc > 8 {
            return Err("bias, temperature or class count out of range".into());
        }
        let all_finite = scales.iter().chain(&weights).chain(&header.bias).all(|x| x.is_finite());
        if !all_finite {
            return Err("non-finite weights".into());
        }
        let tokenizer = WordPiece::new(vocab.iter().map(|t| &**t)).ok_or("vocabulary without [UNK]")?;
        let table = table_bytes.iter().map(|b| i8::from_ne_bytes([*b])).collect();
        Ok(Model {
            tokenizer,
            vocab,
            classes,
            table,
            scales,
            features: header.features,
            weights,
            bias: header.bias,
            temperature: header.temperature,
            about: header.about,
            bytes: bytes.len(),
        })
    }

    pub fn classes(&self) -> &[Task] {
        &self.classes
    }

    /// Scores for a request: `parts` are the token ids of each of [`PARTS`], `features` the
    /// values of [`Model::features`] (missing ones count 0). `explain` fills the evidence.
    pub fn score(&self, parts: [&[u32]; 4], features: &[f32], explain: bool) -> Scored {
        let nc = self.classes.len();
        let np = PARTS.len();
        let mut logits = [0f32; 8];
        logits[..nc].copy_from_slice(&self.bias);
        for (p, ids) in parts.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let mut sums = [0i32; 8];
            for &id in *ids {
                let at = (id as usize) * np * nc + p * nc;
                if let Some(row) = self.table.get(at..at + nc) {
                    for (s, v) in sums.iter_mut().zip(row) {
                        *s += i32::from(*v);
                    }
                }
            }
            let n = ids.len() as f32;
            let scales = &self.scales[p * nc..(p + 1) * nc];
            for ((l, s), scale) in logits.iter_mut().zip(sums).zip(scales) {
                *l += s as f32 * scale / n;
            }
        }
        for (f, x) in features.iter().enumerate().take(self.features.len()) {
            if *x != 0.0 {
                for (l, w) in logits.iter_mut().zip(&self.weights[f * nc..(f + 1) * nc]) {
                    *l += x * w;
                }
            }
        }
        let mut probabilities = [0f32; 8];
        let max = logits[..nc].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for c in 0..nc {
            let e = ((logits[c] - max) / self.temperature).exp();
            probabilities[self.classes[c].index()] = e;
            total += e;
        }
        for p in &mut probabilities {
            *p /= total;
        }
        let evidence = if explain { self.evidence(parts, features, &probabilities) } else { Vec::new() };
        Scored { probabilities, evidence }
    }

    /// What pushed the top class up most: tokens (their share of their part's mean) and
    /// features, strongest first.
    fn evidence(&self, parts: [&[u32]; 4], features: &[f32], probabilities: &[f32; 8]) -> Vec<(f32, String)> {
        let nc = self.classes.len();
        let np = PARTS.len();
        let top = (0..nc)
            .max_by(|a, b| probabilities[self.classes[*a].index()].total_cmp(&probabilities[self.classes[*b].index()]));
        let Some(c) = top else { return Vec::new() };
        let mut out: Vec<(f32, String)> = Vec::new();
        for (p, ids) in parts.iter().enumerate() {
            let n = ids.len() as f32;
            let mut seen: Vec<u32> = Vec::new();
            for &id in *ids {
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id);
                let count = ids.iter().filter(|x| **x == id).count() as f32;
                let at = (id as usize) * np * nc + p * nc + c;
                let Some(v) = self.table.get(at) else { continue };
                let points = f32::from(*v) * self.scales[p * nc + c] * count / n;
                let token = self.vocab.get(id as usize).map_or("?", |t| &**t);
                // punctuation and sub-word pieces say little to a reader
                if !token.chars().any(char::is_alphanumeric) || token.starts_with("##") {
                    continue;
                }
                let place = if p == 0 { String::new() } else { format!(" ({})", PARTS[p]) };
                out.push((points, format!("word \"{token}\"{place}")));
            }
        }
        for (f, x) in features.iter().enumerate().take(self.features.len()) {
            if *x != 0.0 {
                out.push((x * self.weights[f * nc + c], self.features[f].clone()));
            }
        }
        out.retain(|(p, _)| *p > 0.0);
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        out.truncate(8);
        out
    }
}

fn take_u32(b: &[u8]) -> Result<(u32, &[u8]), String> {
    let (head, rest) = b.split_at_checked(4).ok_or("truncated file")?;
    let mut le = [0u8; 4];
    le.copy_from_slice(head);
    Ok((u32::from_le_bytes(le), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_model_loads_and_gives_probabilities_that_sum_to_one() {
        let m = Model::parse(EMBEDDED).expect("embedded model");
        assert!(m.bytes <= 10 * 1024 * 1024, "the model file must stay under 10 MB");
        let mut ids = Vec::new();
        m.tokenizer.encode("write a python function that reverses a list", 64, &mut ids);
        let s = m.score([&ids, &[], &[], &[]], &[], true);
        let sum: f32 = s.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert!(!s.evidence.is_empty());
    }

    /// The training script's own scores for a sample of its prompts (same token ids and
    /// features, same quantised table): the gateway must agree to within rounding.
    #[test]
    fn scores_match_the_training_scripts() {
        #[derive(Deserialize)]
        struct Case {
            id: String,
            parts: [Vec<u32>; 4],
            features: Vec<f32>,
            probabilities: Vec<f32>,
        }
        let m = Model::parse(EMBEDDED).expect("embedded model");
        let cases: Vec<Case> = serde_json::from_str(include_str!("model_parity.json")).expect("parity file");
        assert!(cases.len() >= 20);
        for c in cases {
            let s = m.score([&c.parts[0], &c.parts[1], &c.parts[2], &c.parts[3]], &c.features, false);
            for (task, want) in m.classes().iter().zip(&c.probabilities) {
                let got = s.probabilities[task.index()];
                assert!((got - want).abs() < 2e-3, "{}: {} {got} != {want}", c.id, task.as_str());
            }
        }
    }

    #[test]
    fn damaged_files_are_refused_with_a_reason() {
        assert!(Model::parse(b"nope").is_err());
        let mut cut = EMBEDDED.to_vec();
        cut.truncate(cut.len() - 1);
        assert!(Model::parse(&cut).is_err());
        let mut v2 = EMBEDDED.to_vec();
        v2[4] = 9;
        assert!(Model::parse(&v2).err().is_some_and(|e| e.contains("version")));
    }
}
