//! `freeway classifier-features` (hidden): what the learned classifier reads of each prompt of
//! a labelled set (token ids per part, feature values), as JSON lines for the training script
//! (`tests/classifier/train.py`). The gateway's own code computes them, so training sees
//! exactly what routing will.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use serde_json::value::RawValue;

use super::labelled::Labelled;
use crate::routing::classifier::{FEATURES, Input, Prepared, prepare_with};
use crate::routing::text::{content_text, context_of};
use crate::routing::wordpiece::WordPiece;

#[derive(Debug, Args)]
pub struct FeatureArgs {
    /// The vocabulary (one token per line, in id order)
    #[arg(long)]
    pub vocab: PathBuf,
    /// Labelled prompts (JSON lines: id, label, prompt, system?, history?, image?, tools?, json?)
    pub files: Vec<PathBuf>,
}

/// A message's text as the gateway sees it (windowed when long).
fn seen(text: &str) -> String {
    let raw = serde_json::to_string(text).ok().and_then(|s| RawValue::from_string(s).ok());
    content_text(raw.as_deref())
}

pub fn run(args: FeatureArgs) -> i32 {
    let vocab = match std::fs::read_to_string(&args.vocab) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("freeway classifier-features: {}: {e}", args.vocab.display());
            return 2;
        }
    };
    let Some(tokenizer) = WordPiece::new(vocab.lines()) else {
        eprintln!("freeway classifier-features: the vocabulary has no [UNK]");
        return 2;
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "{}", json!({ "features": FEATURES }));
    let mut prepared = Prepared::default();
    for file in &args.files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("freeway classifier-features: {}: {e}", file.display());
                return 2;
            }
        };
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let item: Labelled = match serde_json::from_str(line) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("freeway classifier-features: {}:{}: {e}", file.display(), n + 1);
                    return 2;
                }
            };
            let prompt = seen(&item.prompt);
            let system = seen(item.system.as_deref().unwrap_or(""));
            let earlier = item.history.iter().rev().find(|t| t.role == "user").map_or("", |t| &t.content);
            let reply = match item.history.last() {
                Some(t) if t.role == "assistant" => t.content.as_str(),
                _ => "",
            };
            let context = context_of(&seen(earlier), &seen(reply));
            let input = Input {
                prompt: &prompt,
                system: &system,
                context: &context,
                images: item.image,
                tools: item.tools,
                json: item.json,
            };
            prepare_with(&tokenizer, &input, &mut prepared);
            let line = json!({ "id": item.id, "parts": prepared.parts, "features": prepared.features.to_vec() });
            if writeln!(out, "{line}").is_err() {
                return 1;
            }
        }
    }
    i32::from(out.flush().is_err())
}
