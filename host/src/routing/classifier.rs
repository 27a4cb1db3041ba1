//! The request classifier: which kind of task a prompt is, how sure we are, and the evidence.
//! Native and cheap (one Aho-Corasick pass over the prompt for weighted keywords in several
//! languages, a handful of regular expressions for shapes such as code fences, stack traces and
//! arithmetic), and explainable: every point it scores is named in `signals`.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::RegexSet;

use super::lexicon::{KEYWORDS, SHAPES};
use super::text::{HEAD, TAIL, ceil_char, floor_char};
pub use crate::task::Task;

/// What the classifier concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub task: Task,
    /// 0.0 - 1.0
    pub confidence: f32,
    /// the evidence, strongest first (at most a dozen)
    pub signals: Vec<String>,
}

/// What the classifier reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// the last user message's text
    pub prompt: &'a str,
    /// system prompt text (counts half)
    pub system: &'a str,
    pub images: bool,
    pub tools: bool,
    pub json: bool,
}

/// Bytes read from the start (and the end) of pasted material.
const MATERIAL_WINDOW: usize = 800;
/// Bytes of pasted material the shape patterns read.
const MATERIAL_SHAPES: usize = 400;
/// Bytes of the instruction (and of the system prompt) the shape patterns read.
const SHAPE_WINDOW: usize = 800;
/// General's floor: the class a prompt gets when nothing else is convincing.
const GENERAL_FLOOR: f32 = 1.2;

struct Matchers {
    keywords: AhoCorasick,
    /// (pattern, class, weight, name), one pattern each: a set of them falls off the regex
    /// crate's fast engines on non-ASCII text
    shapes: RegexSet,
}

static MATCHERS: LazyLock<Option<Matchers>> = LazyLock::new(|| {
    let keywords = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(KEYWORDS.iter().map(|k| k.0))
        .ok()?;
    // ASCII word boundaries keep every pattern on the regex crate's fast DFA engines
    // ASCII word boundaries keep every pattern on the fast DFA engines
    // (the lazy-DFA caches, ~2 MiB each, grow per thread on first use; a smaller limit makes
    // them thrash)
    let shapes = RegexSet::new(SHAPES.iter().map(|(re, ..)| asciify(re))).ok()?;
    Some(Matchers { keywords, shapes })
});

/// `\w`, `\s`, `\d` and `\b` as their ASCII forms: keeps one set of patterns on the regex
/// crate's lazy DFA (Unicode classes and boundaries make it large or make it give up).
fn asciify(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 64);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(k @ ('w' | 's' | 'd')) if in_class => out.push_str(match k {
                    'w' => "0-9A-Za-z_",
                    's' => "\t\n\x0B\x0C\r ",
                    _ => "0-9",
                }),
                Some(k @ ('w' | 's' | 'd' | 'b')) => {
                    out.push_str("(?-u:\\");
                    out.push(k);
                    out.push(')');
                }
                Some(k) => {
                    out.push('\\');
                    out.push(k);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // a leading `^` or `]` belongs to the class
                let mut peek = chars.clone();
                if let Some(n @ ('^' | ']')) = peek.next() {
                    out.push(n);
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The part of `s` the scorer reads: all of it, or its head and tail.
fn window(s: &str) -> (&str, &str) {
    if s.len() <= HEAD + TAIL {
        return (s, "");
    }
    (&s[..floor_char(s, HEAD)], &s[ceil_char(s, s.len() - TAIL)..])
}

/// Word characters for ASCII keywords' boundaries (so "Pythonで" still finds "python").
fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Classes the keyword scorer decides between (vision and tool use come from the request's shape,
/// not its words).
const SCORED: [Task; 6] = [Task::General, Task::Code, Task::Math, Task::Reasoning, Task::Creative, Task::Extraction];

/// A scored class's position in a tally.
fn slot(task: Task) -> usize {
    SCORED.iter().position(|t| *t == task).unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    scores: [f32; 6],
    /// (points, what) per scored item
    evidence: Vec<(f32, Task, &'static str)>,
    seen: Vec<u16>,
}

impl Tally {
    fn add(&mut self, task: Task, points: f32, what: &'static str) {
        self.scores[slot(task)] += points;
        self.evidence.push((points, task, what));
    }

    /// Keywords over `text`, shapes over its first `shape_bytes`.
    fn scan(&mut self, m: &Matchers, text: &str, scale: f32, shape_bytes: usize) {
        for hit in m.keywords.find_iter(text) {
            let Some(&(word, task, weight, prefix)) = KEYWORDS.get(hit.pattern().as_usize()) else { continue };
            let ascii = word.is_ascii();
            if ascii {
                let before = text[..hit.start()].chars().next_back();
                let after = text[hit.end()..].chars().next();
                let word_end = word.chars().next_back().is_some_and(char::is_alphanumeric);
                if is_word(before) || (!prefix && word_end && is_word(after)) {
                    continue;
                }
            }
            let id = u16::try_from(hit.pattern().as_usize()).unwrap_or(u16::MAX);
            if self.seen.contains(&id) {
                continue;
            }
            self.seen.push(id);
            self.add(task, weight * scale, word);
        }
        // shapes show early; regexes over all of a long text would cost more than they tell
        if shape_bytes == 0 {
            return;
        }
        let text = &text[..floor_char(text, shape_bytes)];
        if pasted_data(text) {
            self.add(Task::Extraction, scale, "pasted data");
        }
        for i in &m.shapes.matches(text) {
            if let Some(&(_, task, weight, name)) = SHAPES.get(i) {
                self.add(task, weight * scale, name);
            }
        }
    }
}

/// Compile the matchers (Aho-Corasick automaton, regular expressions) ahead of the first
/// request. Their search caches still grow on first use, so a gateway that never routes `auto`
/// never pays for them.
pub fn warm_up() {
    LazyLock::force(&MATCHERS);
}

/// Classify a request.
pub fn classify(input: &Input<'_>) -> Classification {
    if input.tools {
        return Classification { task: Task::ToolUse, confidence: 0.95, signals: vec!["tools in the request".into()] };
    }
    if input.images {
        return Classification { task: Task::Vision, confidence: 0.95, signals: vec!["image in the request".into()] };
    }
    let Some(m) = MATCHERS.as_ref() else {
        return Classification { task: Task::General, confidence: 0.0, signals: vec!["classifier unavailable".into()] };
    };
    let mut t = Tally::default();
    t.add(Task::General, GENERAL_FLOOR, "baseline");
    // an instruction followed by pasted material: the material's words count less (a CV that
    // lists "Python" is not a coding request)
    let (instruction, material) = split_material(input.prompt);
    let (head, tail) = window(instruction);
    t.scan(m, head, 1.0, SHAPE_WINDOW);
    if !tail.is_empty() {
        t.scan(m, tail, 1.0, 0);
    }
    if !material.is_empty() {
        // the material's start and end say what it is
        let cut = floor_char(material, MATERIAL_WINDOW);
        t.scan(m, &material[..cut], 0.4, MATERIAL_SHAPES);
        if material.len() > 2 * MATERIAL_WINDOW {
            t.scan(m, &material[ceil_char(material, material.len() - MATERIAL_WINDOW)..], 0.4, 0);
        }
        t.add(Task::Extraction, 0.5, "instruction over pasted material");
    }
    let head = if material.is_empty() { head } else { instruction };
    if !input.system.is_empty() {
        let (head, _) = window(input.system);
        t.scan(m, head, 0.5, SHAPE_WINDOW);
    }
    if input.json {
        t.add(Task::Extraction, 2.0, "JSON output requested");
    }
    let numbers = count_numbers(head);
    if numbers >= 3 {
        t.add(Task::Math, 0.7, "several numbers");
    }
    // a question set up over several sentences: thinking, more than recall
    let sentences = head.split(['.', '?', '!', '\n']).filter(|x| x.split_whitespace().count() >= 3).count();
    if sentences >= 3 && head.contains('?') {
        t.add(Task::Reasoning, 0.8, "multi-sentence question");
    }
    let mut order: Vec<Task> = SCORED.to_vec();
    order.sort_by(|a, b| t.scores[slot(*b)].total_cmp(&t.scores[slot(*a)]));
    let best = order.first().copied().unwrap_or(Task::General);
    let s1 = t.scores[slot(best)];
    let s2 = order.get(1).map_or(0.0, |x| t.scores[slot(*x)]);
    let confidence = if s1 <= 0.0 { 0.0 } else { (s1 / (s1 + s2)).clamp(0.0, 0.99) };
    t.evidence.sort_by(|a, b| b.0.total_cmp(&a.0));
    let signals = t
        .evidence
        .iter()
        .filter(|(_, task, what)| *task == best && *what != "baseline")
        .take(12)
        .map(|(p, _, what)| format!("{what} (+{p:.1})"))
        .collect();
    Classification { task: best, confidence, signals }
}

/// A colon followed by a block of text (a line break then 80+ bytes, or a quote/bracket then
/// 40+): something pasted to work on.
fn pasted_data(s: &str) -> bool {
    s.match_indices(':').any(|(i, _)| {
        let rest = s[i + 1..].trim_start_matches([' ', '\t']);
        (rest.starts_with('\n') && rest.len() > 80) || (rest.starts_with(['"', '[']) && rest.len() > 40)
    })
}

/// (instruction, material): a prompt whose first line or paragraph (under 400 bytes) ends in a
/// colon or a blank line and is followed by at least as much text again.
fn split_material(s: &str) -> (&str, &str) {
    let limit = s.len().min(400);
    let cut = [":\n", "\n\n", ": \n"]
        .iter()
        .filter_map(|sep| s[..floor_char(s, limit)].find(sep).map(|i| (i, sep.len())))
        .min();
    match cut {
        Some((i, len)) if i >= 12 && s.len() - (i + len) >= (i + len).max(60) => (&s[..i + 1], &s[i + len..]),
        _ => (s, ""),
    }
}

fn count_numbers(s: &str) -> usize {
    let mut n = 0;
    let mut in_num = false;
    for c in s.chars() {
        let d = c.is_ascii_digit();
        if d && !in_num {
            n += 1;
        }
        in_num = d;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(prompt: &str) -> Task {
        classify(&Input { prompt, ..Input::default() }).task
    }

    #[test]
    fn every_keyword_and_shape_compiles() {
        let m = MATCHERS.as_ref().expect("matchers");
        assert_eq!(m.shapes.len(), SHAPES.len());
        assert_eq!(m.keywords.patterns_len(), KEYWORDS.len());
    }

    #[test]
    fn shapes_of_the_request_decide_before_words() {
        let c = classify(&Input { prompt: "write a poem", tools: true, ..Input::default() });
        assert_eq!(c.task, Task::ToolUse);
        let c = classify(&Input { prompt: "solve 2+2", images: true, ..Input::default() });
        assert_eq!(c.task, Task::Vision);
    }

    #[test]
    fn common_prompts_land_in_their_class() {
        assert_eq!(task("Write a Python function that reverses a linked list"), Task::Code);
        assert_eq!(task("```rust\nfn main() { let x = 5; }\n```\nwhy does this not compile?"), Task::Code);
        assert_eq!(task("Solve for x: 3x + 5 = 20"), Task::Math);
        assert_eq!(task("What is the derivative of sin(x) * x^2?"), Task::Math);
        assert_eq!(task("Write a haiku about autumn leaves"), Task::Creative);
        assert_eq!(task("Extract every person's name and date from the following email"), Task::Extraction);
        assert_eq!(
            task("Three people: one always lies, one always tells the truth... who is the liar? A riddle."),
            Task::Reasoning
        );
        assert_eq!(task("hi, how are you today?"), Task::General);
        assert_eq!(task("Escribe un poema sobre el mar"), Task::Creative);
        assert_eq!(task("用Python写一个函数"), Task::Code);
    }

    #[test]
    fn keywords_match_whole_words_only() {
        // "summary" is not "sum", "classic" is not "class", "scrapbook" is not "rap"
        let c = classify(&Input { prompt: "a classic summary of the scrapbook", ..Input::default() });
        assert!(c.signals.iter().all(|s| !s.starts_with("sum ") && !s.starts_with("class ") && !s.starts_with("rap ")));
    }

    #[test]
    fn the_evidence_names_what_was_found() {
        let c = classify(&Input { prompt: "Fix this bug in my JavaScript: ```let a = 1```", ..Input::default() });
        assert_eq!(c.task, Task::Code);
        assert!(c.signals.iter().any(|s| s.starts_with("code fence")), "{:?}", c.signals);
        assert!(c.confidence > 0.6, "{c:?}");
    }

    #[test]
    fn long_prompts_are_read_at_both_ends_and_cut_on_char_boundaries() {
        let long = format!("{}\n\nnow write a limerick about it", "é".repeat(10_000));
        assert_eq!(task(&long), Task::Creative);
    }
}

#[cfg(test)]
mod timing {
    use std::time::Instant;

    use super::*;

    #[test]
    #[ignore = "timing probe: cargo test --release -- --ignored --nocapture"]
    fn probe_long_prompt_costs() {
        let doc =
            "The quarterly operations review covered staffing, supplier delays, warehouse throughput. ".repeat(2000);
        let body =
            serde_json::json!([{"role":"user","content": format!("Summarise the minutes below.\n\n---\n{doc}")}])
                .to_string();
        let raw = serde_json::value::RawValue::from_string(body).unwrap();
        let list: Vec<&serde_json::value::RawValue> = serde_json::from_str(raw.get()).unwrap();
        #[derive(serde::Deserialize)]
        struct M<'a> {
            #[serde(borrow)]
            content: &'a serde_json::value::RawValue,
        }
        let m: M = serde_json::from_str(list[0].get()).unwrap();
        let _ = classify(&Input { prompt: "warm up", ..Input::default() });
        eprintln!("keyword automaton: {} KiB", MATCHERS.as_ref().map_or(0, |m| m.keywords.memory_usage()) / 1024);
        for _ in 0..3 {
            let t = Instant::now();
            let text = crate::routing::text::content_text(Some(m.content));
            let t1 = t.elapsed();
            let c = classify(&Input { prompt: &text, ..Input::default() });
            let t2 = t.elapsed();
            let l = crate::routing::language::detect(&text);
            let t3 = t.elapsed();
            eprintln!(
                "text {:?} classify {:?} language {:?} -> {:?} {:?} len {}",
                t1,
                t2 - t1,
                t3 - t2,
                c.task,
                l,
                text.len()
            );
        }
    }
}
