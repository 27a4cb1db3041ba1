//! The keyword and shape evidence: one Aho-Corasick pass over the prompt for weighted keywords
//! in several languages and one pass of a dense DFA (built at start, no lazy states) for the
//! shapes of text (code fences, stack traces, arithmetic...). Every point is named. The learned
//! model reads these scores as features (a prior it learned to weigh); without a model they
//! decide alone.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::lexicon::{KEYWORDS, SHAPES};
use super::shapes::{Shapes, Trigger};
use super::text::{HEAD, TAIL, ceil_char, floor_char};
use crate::task::Task;

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
    shapes: Shapes,
}

static MATCHERS: LazyLock<Option<Matchers>> = LazyLock::new(|| {
    let keywords = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(KEYWORDS.iter().map(|k| k.0))
        .ok()?;
    // ASCII word boundaries and classes keep the DFA small (Unicode ones make it large)
    let patterns: Vec<(String, Trigger)> =
        SHAPES.iter().map(|(re, _, _, name)| (asciify(re), super::shapes::trigger(name))).collect();
    let shapes = match Shapes::new(&patterns) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("the classifier's shapes do not compile: {e}");
            return None;
        }
    };
    Some(Matchers { keywords, shapes })
});

/// `\w`, `\s`, `\d` and `\b` as their ASCII forms (Unicode classes make the DFA large and a
/// Unicode word boundary makes it give up on non-ASCII text).
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
pub const SCORED: [Task; 6] =
    [Task::General, Task::Code, Task::Math, Task::Reasoning, Task::Creative, Task::Extraction];

/// A scored class's position in a tally.
fn slot(task: Task) -> usize {
    SCORED.iter().position(|t| *t == task).unwrap_or(0)
}

/// The points each scored class got, and what gave them.
#[derive(Default)]
pub struct Tally {
    /// per class of [`SCORED`], the baseline left out
    pub scores: [f32; 6],
    /// (points, class, what) per scored item
    pub evidence: Vec<(f32, Task, &'static str)>,
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
        let found = m.shapes.matches(text);
        for (i, &(_, task, weight, name)) in SHAPES.iter().enumerate() {
            if found & (1 << i) != 0 {
                self.add(task, weight * scale, name);
            }
        }
    }
}

/// Build the matchers (the keyword automaton, the shapes' DFA) now.
pub fn warm_up() {
    LazyLock::force(&MATCHERS);
}

/// Whether the matchers compiled (they always should; a test holds them to it).
pub fn ready() -> bool {
    MATCHERS.is_some()
}

/// The prompt's instruction and the material pasted after it ("" when there is none).
pub fn parts(prompt: &str) -> (&str, &str) {
    split_material(prompt)
}

/// The keyword and shape evidence for a request whose prompt [`parts`] split into `instruction`
/// and `material`. The material's words count less (a CV that lists "Python" is not a coding
/// request).
pub fn tally(instruction: &str, material: &str, system: &str, json: bool) -> Tally {
    let mut t = Tally::default();
    let Some(m) = MATCHERS.as_ref() else { return t };
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
    if !system.is_empty() {
        let (head, _) = window(system);
        t.scan(m, head, 0.5, SHAPE_WINDOW);
    }
    if json {
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
    t
}

impl Tally {
    /// The rules' own verdict (used when no model is loaded): (class, confidence).
    pub fn verdict(&self) -> (Task, f32) {
        let score = |t: Task| self.scores[slot(t)] + if t == Task::General { GENERAL_FLOOR } else { 0.0 };
        let mut order: Vec<Task> = SCORED.to_vec();
        order.sort_by(|a, b| score(*b).total_cmp(&score(*a)));
        let best = order.first().copied().unwrap_or(Task::General);
        let (s1, s2) = (score(best), order.get(1).map_or(0.0, |x| score(*x)));
        let confidence = if s1 <= 0.0 { 0.0 } else { (s1 / (s1 + s2)).clamp(0.0, 0.99) };
        (best, confidence)
    }

    /// The evidence for `task`, strongest first, at most `max`.
    pub fn signals(&self, task: Task, max: usize, out: &mut Vec<String>) {
        let mut ev: Vec<&(f32, Task, &str)> = self.evidence.iter().filter(|(_, t, _)| *t == task).collect();
        ev.sort_by(|a, b| b.0.total_cmp(&a.0));
        out.extend(ev.iter().take(max).map(|(p, _, what)| format!("{what} (+{p:.1})")));
    }
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

    #[test]
    fn every_keyword_and_shape_compiles() {
        let m = MATCHERS.as_ref().expect("matchers");
        assert_eq!(m.shapes.len(), SHAPES.len());
        assert!(SHAPES.len() <= 64);
        assert_eq!(m.keywords.patterns_len(), KEYWORDS.len());
    }

    /// Searching only where a shape can start finds what searching everywhere does.
    #[test]
    fn shapes_are_found_where_they_can_start_as_everywhere() {
        let m = MATCHERS.as_ref().expect("matchers");
        let texts = [
            "```rust\nfn main() { let x = 5; }\n```\nwhy does this not compile?",
            "def parse(s):\n    return s.split(';')\nTraceback (most recent call last):\n  File \"a.py\"",
            "SELECT name, total FROM orders GROUP BY name; insert into t values (1)",
            "$ ls -la /etc/nginx\nerror[E0382]: borrow of moved value",
            "compute 3 + 4 * (2 - 1) and 12 / 4, then x^2 + 3x = 10, \\frac{1}{2}, √2 ≤ 2",
            "what is sin x + cos(2x)? log y",
            "Write me a Python function; give me a regex; make a script",
            "Extract the names from the following text: Ana met Tom in the email below",
            "Should I take the train or the bus? If it rains then we stay. All cats are mammals.",
            "What has keys but can't open locks?",
            "a 20% tip on $45, 3 kg of flour, 5 km/h; how many apples are left if I eat 3?",
            "call foo_bar(1) or obj.method(2) or camelCase(3) in src/main.rs and app.py",
            "plain words with nothing special at all in them, nothing to see here",
            "Ünïcödé téxt with ≥ and ∫ f(x) dx/dy and d/dx",
        ];
        for t in texts {
            assert_eq!(m.shapes.matches(t), m.shapes.matches_everywhere(t), "{t}");
        }
    }
}
