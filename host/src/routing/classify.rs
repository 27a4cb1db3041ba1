//! The request classifier: which kind of task a prompt is, how sure we are, and the evidence.
//! Native and cheap (one Aho-Corasick pass over the prompt for weighted keywords in several
//! languages, a handful of regular expressions for shapes such as code fences, stack traces and
//! arithmetic), and explainable: every point it scores is named in `signals`.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::RegexSet;

use super::text::{HEAD, TAIL};

/// Task classes, as the policy world names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    General,
    Code,
    Math,
    Reasoning,
    Creative,
    Extraction,
    Vision,
    ToolUse,
}

impl Task {
    pub const ALL: [Task; 8] = [
        Task::General,
        Task::Code,
        Task::Math,
        Task::Reasoning,
        Task::Creative,
        Task::Extraction,
        Task::Vision,
        Task::ToolUse,
    ];

    /// Position in [`Task::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Task::General => "general",
            Task::Code => "code",
            Task::Math => "math",
            Task::Reasoning => "reasoning",
            Task::Creative => "creative",
            Task::Extraction => "extraction",
            Task::Vision => "vision",
            Task::ToolUse => "tool-use",
        }
    }

    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == s || (s == "tool_use" && *t == Task::ToolUse))
    }

    /// Classes the keyword scorer decides between (vision and tool use come from the request's
    /// shape, not its words).
    const SCORED: [Task; 6] =
        [Task::General, Task::Code, Task::Math, Task::Reasoning, Task::Creative, Task::Extraction];

    fn slot(self) -> usize {
        Task::SCORED.iter().position(|t| *t == self).unwrap_or(0)
    }
}

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

/// (pattern, class, weight, prefix). ASCII patterns match case-insensitively on word boundaries
/// (`prefix`: only the left one, so `compil` finds "compiler" and "compiling").
type Kw = (&'static str, Task, f32, bool);

#[rustfmt::skip]
const KEYWORDS: &[Kw] = &[
    // code
    ("code", Task::Code, 2.0, false), ("coding", Task::Code, 2.0, false), ("function", Task::Code, 1.5, true),
    ("method", Task::Code, 1.0, false), ("class", Task::Code, 0.7, false), ("bug", Task::Code, 1.5, true),
    ("debug", Task::Code, 2.0, true), ("compil", Task::Code, 2.0, true), ("python", Task::Code, 2.5, false),
    ("javascript", Task::Code, 2.5, false), ("typescript", Task::Code, 2.5, false), ("java", Task::Code, 2.0, false),
    ("c++", Task::Code, 2.5, false), ("c#", Task::Code, 2.0, false), ("rust", Task::Code, 1.5, false),
    ("golang", Task::Code, 2.5, false), ("kotlin", Task::Code, 2.5, false), ("swift", Task::Code, 1.0, false),
    ("ruby", Task::Code, 1.0, false), ("php", Task::Code, 2.5, false), ("sql", Task::Code, 2.5, false),
    ("regex", Task::Code, 2.5, false), ("regular expression", Task::Code, 2.5, false), ("script", Task::Code, 1.5, false),
    ("bash", Task::Code, 2.5, false), ("shell", Task::Code, 1.5, false), ("terminal", Task::Code, 1.0, false),
    ("command line", Task::Code, 1.5, false), ("git", Task::Code, 2.0, false), ("docker", Task::Code, 2.5, true),
    ("kubernetes", Task::Code, 2.5, false), ("kubectl", Task::Code, 2.5, false), ("api", Task::Code, 1.0, false),
    ("endpoint", Task::Code, 1.0, false), ("yaml", Task::Code, 1.5, false), ("html", Task::Code, 2.0, false),
    ("css", Task::Code, 2.0, false), ("react", Task::Code, 1.5, false), ("node.js", Task::Code, 2.5, false),
    ("npm", Task::Code, 2.5, false), ("pip", Task::Code, 1.5, false), ("library", Task::Code, 0.5, false),
    ("framework", Task::Code, 0.7, false), ("algorithm", Task::Code, 1.5, true), ("implement", Task::Code, 1.0, true),
    ("refactor", Task::Code, 2.5, true), ("unit test", Task::Code, 2.5, true), ("stack trace", Task::Code, 2.5, false),
    ("exception", Task::Code, 1.5, false), ("segfault", Task::Code, 3.0, false), ("null pointer", Task::Code, 2.5, false),
    ("variable", Task::Code, 1.5, true), ("loop", Task::Code, 1.0, false), ("array", Task::Code, 1.5, true),
    ("mutex", Task::Code, 2.5, false), ("thread", Task::Code, 1.5, true), ("process", Task::Code, 0.7, false), ("async", Task::Code, 2.0, false),
    ("compiler", Task::Code, 1.0, false), ("syntax", Task::Code, 1.5, false), ("programming", Task::Code, 2.0, false),
    ("program", Task::Code, 1.0, false), ("developer", Task::Code, 1.0, false), ("repository", Task::Code, 1.5, false),
    ("linux", Task::Code, 1.0, false), ("database", Task::Code, 1.0, false), ("deploy", Task::Code, 1.0, true),
    ("recursion", Task::Code, 1.5, false), ("recursive", Task::Code, 1.5, false), ("pandas", Task::Code, 2.5, false),
    ("numpy", Task::Code, 2.5, false), ("django", Task::Code, 2.5, false), ("flask", Task::Code, 2.0, false),
    ("dataframe", Task::Code, 2.5, false), ("hash map", Task::Code, 2.0, false), ("hashmap", Task::Code, 2.0, false),
    ("linked list", Task::Code, 2.5, false), ("binary tree", Task::Code, 2.0, false), ("big-o", Task::Code, 2.0, false),
    ("time complexity", Task::Code, 2.0, false), ("snippet", Task::Code, 2.0, true), ("json", Task::Code, 0.5, false),
    ("nginx", Task::Code, 2.0, false), ("webpack", Task::Code, 2.5, false), ("cron", Task::Code, 2.0, true),
    ("makefile", Task::Code, 2.5, false), ("dockerfile", Task::Code, 2.5, false), ("powershell", Task::Code, 2.5, false),
    ("typeerror", Task::Code, 3.0, false), ("undefined", Task::Code, 1.0, false), ("index out of", Task::Code, 2.5, false),
    ("borrow checker", Task::Code, 3.0, false), ("lifetime", Task::Code, 0.5, false), ("struct", Task::Code, 2.0, false),
    ("enum", Task::Code, 1.5, false), ("interface", Task::Code, 0.7, false), ("pull request", Task::Code, 2.0, false),
    ("código", Task::Code, 2.5, false), ("función", Task::Code, 1.5, false), ("programa", Task::Code, 1.0, false),
    ("fonction", Task::Code, 1.5, false), ("programme", Task::Code, 1.0, false), ("funktion", Task::Code, 1.5, false),
    ("programmier", Task::Code, 2.0, true), ("代码", Task::Code, 3.0, false), ("函数", Task::Code, 3.0, false),
    ("编程", Task::Code, 3.0, false), ("程序", Task::Code, 2.0, false), ("コード", Task::Code, 3.0, false),
    ("関数", Task::Code, 3.0, false), ("プログラム", Task::Code, 2.0, false), ("код", Task::Code, 2.5, false),
    ("функци", Task::Code, 2.0, true), ("програм", Task::Code, 2.0, true),
    ("eslint", Task::Code, 3.0, false), ("awk", Task::Code, 2.5, false), ("sed", Task::Code, 1.5, false),
    ("grep", Task::Code, 2.5, false), ("mutable", Task::Code, 2.5, false), ("borrow", Task::Code, 1.5, true),
    ("config", Task::Code, 1.0, true), ("runtime", Task::Code, 1.0, false), ("stdout", Task::Code, 2.5, false),
    ("compile", Task::Code, 1.0, false), ("frontend", Task::Code, 1.0, false), ("backend", Task::Code, 1.0, false),
    ("query", Task::Code, 1.0, false), ("postgres", Task::Code, 2.5, true), ("mysql", Task::Code, 2.5, false),
    ("sqlite", Task::Code, 2.5, false), ("mongodb", Task::Code, 2.5, false), ("directory", Task::Code, 1.0, false),
    ("ubuntu", Task::Code, 1.5, false), ("branch", Task::Code, 1.0, false), ("commit", Task::Code, 2.0, true),
    ("merge", Task::Code, 1.0, false), ("rebase", Task::Code, 2.5, false), ("github", Task::Code, 1.5, false),
    // math
    ("solve", Task::Math, 1.0, false), ("equation", Task::Math, 2.5, true), ("integral", Task::Math, 3.0, false),
    ("integrate", Task::Math, 2.0, false), ("derivative", Task::Math, 3.0, false), ("differentiate", Task::Math, 2.5, false),
    ("calculus", Task::Math, 3.0, false), ("algebra", Task::Math, 2.5, true), ("geometry", Task::Math, 2.5, false),
    ("trigonometr", Task::Math, 3.0, true), ("probability", Task::Math, 2.5, false), ("statistic", Task::Math, 1.5, true),
    ("standard deviation", Task::Math, 3.0, false), ("variance", Task::Math, 2.0, false), ("median", Task::Math, 1.5, false),
    ("average", Task::Math, 1.0, false), ("percent", Task::Math, 1.5, true), ("calculate", Task::Math, 2.0, false),
    ("calculation", Task::Math, 2.0, false), ("compute", Task::Math, 1.0, false), ("sum", Task::Math, 1.0, false),
    ("factorial", Task::Math, 2.0, false), ("factor", Task::Math, 0.7, false), ("prime", Task::Math, 1.5, false),
    ("matrix", Task::Math, 2.0, false), ("matrices", Task::Math, 2.5, false), ("vector", Task::Math, 1.0, false),
    ("eigen", Task::Math, 3.0, true), ("theorem", Task::Math, 2.5, false), ("prove", Task::Math, 1.5, false),
    ("proof", Task::Math, 1.5, false), ("lemma", Task::Math, 2.5, false), ("how many", Task::Math, 1.0, false),
    ("ratio", Task::Math, 1.5, false), ("fraction", Task::Math, 1.5, false), ("square root", Task::Math, 3.0, false),
    ("logarithm", Task::Math, 3.0, false), ("exponent", Task::Math, 1.5, true), ("polynomial", Task::Math, 3.0, false),
    ("quadratic", Task::Math, 3.0, false), ("triangle", Task::Math, 2.0, false), ("circle", Task::Math, 1.0, false),
    ("radius", Task::Math, 2.0, false), ("area", Task::Math, 1.0, false), ("volume", Task::Math, 1.0, false),
    ("perimeter", Task::Math, 2.5, false), ("hypotenuse", Task::Math, 3.0, false), ("interest rate", Task::Math, 2.0, false),
    ("compound interest", Task::Math, 3.0, false), ("convert", Task::Math, 0.7, false), ("km", Task::Math, 1.0, false),
    ("miles", Task::Math, 1.0, false), ("celsius", Task::Math, 1.5, false), ("fahrenheit", Task::Math, 1.5, false),
    ("mph", Task::Math, 1.5, false), ("dice", Task::Math, 1.5, false), ("die", Task::Math, 0.3, false),
    ("coin", Task::Math, 1.0, true), ("odds", Task::Math, 1.0, false), ("expected value", Task::Math, 3.0, false),
    ("combinatori", Task::Math, 3.0, true), ("permutation", Task::Math, 2.5, true), ("combinations", Task::Math, 1.5, false),
    ("modulo", Task::Math, 2.5, false), ("divisible", Task::Math, 2.5, false), ("gcd", Task::Math, 3.0, false),
    ("lcm", Task::Math, 3.0, false), ("limit of", Task::Math, 2.5, false), ("series", Task::Math, 0.7, false),
    ("arithmetic", Task::Math, 2.0, false), ("math", Task::Math, 2.0, true), ("simplify", Task::Math, 1.5, false),
    ("evaluate the", Task::Math, 1.0, false), ("inequality", Task::Math, 2.0, false), ("mortgage", Task::Math, 1.5, false),
    ("monthly payment", Task::Math, 2.5, false), ("discount", Task::Math, 1.0, false), ("per hour", Task::Math, 1.0, false),
    ("ecuación", Task::Math, 3.0, false), ("calcula", Task::Math, 2.5, false), ("calcule", Task::Math, 2.5, false), ("resuelve", Task::Math, 2.0, false),
    ("équation", Task::Math, 3.0, false), ("résous", Task::Math, 2.0, false), ("résoudre", Task::Math, 2.0, false),
    ("gleichung", Task::Math, 3.0, false), ("berechne", Task::Math, 2.5, false), ("löse", Task::Math, 1.5, false),
    ("equação", Task::Math, 3.0, false), ("probabilidad", Task::Math, 2.5, false), ("probabilità", Task::Math, 2.5, false),
    ("probabilité", Task::Math, 2.5, false), ("wahrscheinlichkeit", Task::Math, 2.5, false), ("方程", Task::Math, 3.0, false),
    ("计算", Task::Math, 2.5, false), ("概率", Task::Math, 3.0, false), ("計算", Task::Math, 2.5, false),
    ("確率", Task::Math, 3.0, false), ("уравнени", Task::Math, 3.0, true), ("вычисли", Task::Math, 2.5, true),
    ("вероятност", Task::Math, 3.0, true),
    ("how many ways", Task::Math, 2.5, false), ("limite", Task::Math, 2.0, false), ("tend vers", Task::Math, 2.5, false),
    ("tends to", Task::Math, 2.0, false), ("committee", Task::Math, 1.0, false), ("solución", Task::Math, 0.5, false),
    // reasoning
    ("why", Task::Reasoning, 0.7, false), ("reasoning", Task::Reasoning, 1.5, false), ("logic", Task::Reasoning, 1.5, true),
    ("puzzle", Task::Reasoning, 2.5, false), ("riddle", Task::Reasoning, 2.5, false), ("step by step", Task::Reasoning, 1.0, false),
    ("step-by-step", Task::Reasoning, 1.0, false), ("deduce", Task::Reasoning, 2.0, false), ("infer", Task::Reasoning, 1.5, false),
    ("which is better", Task::Reasoning, 1.5, false), ("should i", Task::Reasoning, 0.7, false), ("should we", Task::Reasoning, 1.0, false),
    ("pros and cons", Task::Reasoning, 2.0, false), ("trade-off", Task::Reasoning, 2.0, true), ("tradeoff", Task::Reasoning, 2.0, true),
    ("compare", Task::Reasoning, 1.0, false), ("versus", Task::Reasoning, 0.7, false), ("decide", Task::Reasoning, 1.5, false),
    ("decision", Task::Reasoning, 1.5, false), ("plan", Task::Reasoning, 1.0, false), ("strategy", Task::Reasoning, 1.0, false),
    ("analyze", Task::Reasoning, 1.0, false), ("analyse", Task::Reasoning, 1.0, false), ("evaluate", Task::Reasoning, 1.0, false),
    ("implication", Task::Reasoning, 1.5, true), ("consequence", Task::Reasoning, 1.0, true), ("argument", Task::Reasoning, 1.0, false),
    ("hypothes", Task::Reasoning, 1.0, true), ("scenario", Task::Reasoning, 1.0, false), ("dilemma", Task::Reasoning, 2.0, false),
    ("paradox", Task::Reasoning, 2.0, false), ("liar", Task::Reasoning, 2.0, false), ("lying", Task::Reasoning, 1.5, false),
    ("tells the truth", Task::Reasoning, 2.5, false), ("knights", Task::Reasoning, 1.5, false), ("assume", Task::Reasoning, 1.0, false),
    ("given that", Task::Reasoning, 1.0, false), ("weigh", Task::Reasoning, 1.0, false), ("prioriti", Task::Reasoning, 1.0, true),
    ("optimal", Task::Reasoning, 1.0, false), ("what would happen", Task::Reasoning, 1.5, false), ("if all", Task::Reasoning, 1.5, false),
    ("therefore", Task::Reasoning, 1.0, false), ("conclude", Task::Reasoning, 1.5, false), ("conclusion", Task::Reasoning, 1.0, false),
    ("think through", Task::Reasoning, 1.5, false), ("root cause", Task::Reasoning, 1.5, false), ("explain why", Task::Reasoning, 1.0, false),
    ("figure out", Task::Reasoning, 1.0, false), ("who owns", Task::Reasoning, 2.0, false), ("sequence", Task::Reasoning, 0.5, false),
    ("por qué", Task::Reasoning, 1.0, false), ("pourquoi", Task::Reasoning, 1.0, false), ("warum", Task::Reasoning, 1.0, false),
    ("为什么", Task::Reasoning, 1.0, false), ("なぜ", Task::Reasoning, 1.0, false), ("почему", Task::Reasoning, 1.0, false),
    ("lógica", Task::Reasoning, 2.0, false), ("logique", Task::Reasoning, 2.0, false), ("rätsel", Task::Reasoning, 2.5, false),
    ("énigme", Task::Reasoning, 2.5, false), ("acertijo", Task::Reasoning, 2.5, false), ("逻辑", Task::Reasoning, 2.5, false),
    ("推理", Task::Reasoning, 2.5, false), ("論理", Task::Reasoning, 2.5, false), ("логик", Task::Reasoning, 2.0, true),
    ("walk me through", Task::Reasoning, 1.5, false), ("help me think", Task::Reasoning, 1.5, false),
    ("causal", Task::Reasoning, 2.0, false), ("why did", Task::Reasoning, 1.0, false), ("recommendation", Task::Reasoning, 1.0, false),
    ("risks", Task::Reasoning, 1.0, false), ("whether", Task::Reasoning, 1.0, false), ("is it better", Task::Reasoning, 2.0, false),
    ("better to", Task::Reasoning, 1.0, false), ("consider", Task::Reasoning, 0.7, true), ("realistic", Task::Reasoning, 1.0, false),
    ("deciding", Task::Reasoning, 1.5, false), ("constraint", Task::Reasoning, 1.5, true), ("must be", Task::Reasoning, 1.0, false),
    ("can't be", Task::Reasoning, 1.0, false), ("taller", Task::Reasoning, 1.5, false), ("shorter", Task::Reasoning, 1.5, false),
    ("older than", Task::Reasoning, 1.5, false), ("younger than", Task::Reasoning, 1.5, false), ("heavier", Task::Reasoning, 1.5, false),
    ("lighter", Task::Reasoning, 1.0, false), ("how do you figure", Task::Reasoning, 1.5, false), ("what would you", Task::Reasoning, 1.0, false),
    ("étape par étape", Task::Reasoning, 1.5, false), ("paso a paso", Task::Reasoning, 1.5, false), ("по шагам", Task::Reasoning, 1.5, false),
    ("schritt für schritt", Task::Reasoning, 1.5, false), ("conviene", Task::Reasoning, 1.5, false), ("raisonnement", Task::Reasoning, 2.0, false),
    ("vale la pena", Task::Reasoning, 1.5, false), ("lohnt sich", Task::Reasoning, 1.5, false),
    ("must not", Task::Reasoning, 1.0, false), ("is this possible", Task::Reasoning, 1.0, false), ("schedule", Task::Reasoning, 0.7, false),
    ("monty hall", Task::Reasoning, 2.5, false),
    // extraction
    ("extract", Task::Extraction, 3.0, true), ("pull out", Task::Extraction, 2.0, false), ("parse", Task::Extraction, 1.0, false),
    ("list all", Task::Extraction, 1.5, false), ("identify", Task::Extraction, 1.0, false), ("entities", Task::Extraction, 2.5, false),
    ("named entit", Task::Extraction, 3.0, true), ("fields", Task::Extraction, 1.5, false), ("structured", Task::Extraction, 1.5, false),
    ("table", Task::Extraction, 0.7, false), ("csv", Task::Extraction, 1.5, false), ("classify", Task::Extraction, 2.0, false),
    ("categori", Task::Extraction, 2.0, true), ("tag", Task::Extraction, 0.7, false), ("label", Task::Extraction, 1.0, false),
    ("sentiment", Task::Extraction, 2.5, false), ("keywords", Task::Extraction, 1.0, false), ("summarize", Task::Extraction, 0.7, false),
    ("summarise", Task::Extraction, 0.7, false), ("key points", Task::Extraction, 1.0, false), ("names", Task::Extraction, 1.0, false),
    ("dates", Task::Extraction, 1.0, false), ("amounts", Task::Extraction, 1.5, false), ("invoice", Task::Extraction, 1.5, false),
    ("receipt", Task::Extraction, 1.5, false), ("phone number", Task::Extraction, 1.5, false), ("email address", Task::Extraction, 1.5, false),
    ("into a table", Task::Extraction, 2.0, false), ("as json", Task::Extraction, 2.0, false), ("json object", Task::Extraction, 1.5, false),
    ("key-value", Task::Extraction, 2.0, false), ("action items", Task::Extraction, 2.0, false), ("bullet", Task::Extraction, 0.3, true),
    ("extrae", Task::Extraction, 3.0, false), ("extraire", Task::Extraction, 3.0, false), ("extrais", Task::Extraction, 3.0, false),
    ("extrahier", Task::Extraction, 3.0, true), ("extraia", Task::Extraction, 3.0, false), ("estrai", Task::Extraction, 3.0, true),
    ("提取", Task::Extraction, 3.0, false), ("抽出", Task::Extraction, 3.0, false), ("извлеки", Task::Extraction, 3.0, false),
    ("columns", Task::Extraction, 1.5, false), ("each line", Task::Extraction, 1.0, false), ("which of these", Task::Extraction, 1.5, false),
    ("list every", Task::Extraction, 1.5, false), ("turn this", Task::Extraction, 1.5, false), ("parse this", Task::Extraction, 2.0, false),
    ("tag this", Task::Extraction, 2.0, false), ("category", Task::Extraction, 1.0, false), ("urgency", Task::Extraction, 1.0, false),
    ("who agreed", Task::Extraction, 1.0, false), ("fill in", Task::Extraction, 0.7, false),
    ("into json", Task::Extraction, 2.0, false), ("with keys", Task::Extraction, 1.5, false), ("haal uit", Task::Extraction, 2.0, false),
    ("volgende tekst", Task::Extraction, 1.5, false), ("texto siguiente", Task::Extraction, 1.5, false),
    ("texte suivant", Task::Extraction, 1.5, false), ("folgenden text", Task::Extraction, 1.5, false),
    // creative
    ("story", Task::Creative, 2.5, false), ("stories", Task::Creative, 2.5, false), ("poem", Task::Creative, 3.0, false),
    ("poetry", Task::Creative, 3.0, false), ("haiku", Task::Creative, 3.0, false), ("limerick", Task::Creative, 3.0, false),
    ("sonnet", Task::Creative, 3.0, false), ("lyrics", Task::Creative, 3.0, false), ("song", Task::Creative, 2.0, false),
    ("rap", Task::Creative, 1.5, false), ("verse", Task::Creative, 1.5, false), ("rhym", Task::Creative, 2.5, true),
    ("fiction", Task::Creative, 2.0, false), ("fairy tale", Task::Creative, 3.0, false), ("novel", Task::Creative, 1.0, false),
    ("chapter", Task::Creative, 1.0, false), ("character", Task::Creative, 1.0, false), ("plot", Task::Creative, 1.0, false),
    ("screenplay", Task::Creative, 3.0, false), ("slogan", Task::Creative, 2.5, false), ("tagline", Task::Creative, 2.5, false),
    ("jingle", Task::Creative, 2.5, false), ("joke", Task::Creative, 2.5, false), ("funny", Task::Creative, 1.0, false),
    ("pun", Task::Creative, 1.5, false), ("creative", Task::Creative, 1.5, false), ("imagine", Task::Creative, 1.5, false),
    ("pretend", Task::Creative, 1.5, false), ("role-play", Task::Creative, 2.5, false), ("roleplay", Task::Creative, 2.5, false),
    ("once upon a time", Task::Creative, 3.0, false), ("fantasy", Task::Creative, 1.5, false), ("dragon", Task::Creative, 1.0, false),
    ("villain", Task::Creative, 1.5, false), ("metaphor", Task::Creative, 1.0, false), ("bedtime", Task::Creative, 1.5, false),
    ("toast", Task::Creative, 1.0, false), ("short film", Task::Creative, 2.0, false), ("monologue", Task::Creative, 2.5, false),
    ("narrat", Task::Creative, 1.5, true), ("fable", Task::Creative, 3.0, false), ("ode", Task::Creative, 2.5, false),
    ("brand name", Task::Creative, 1.5, false), ("catchy", Task::Creative, 2.0, false),
    ("poema", Task::Creative, 3.0, false), ("cuento", Task::Creative, 2.5, false), ("poème", Task::Creative, 3.0, false),
    ("histoire", Task::Creative, 1.5, false), ("conte", Task::Creative, 2.0, false), ("gedicht", Task::Creative, 3.0, false),
    ("geschichte", Task::Creative, 1.5, false), ("poesia", Task::Creative, 3.0, false), ("canción", Task::Creative, 2.0, false),
    ("诗", Task::Creative, 3.0, false), ("故事", Task::Creative, 2.5, false), ("詩", Task::Creative, 3.0, false),
    ("物語", Task::Creative, 2.5, false), ("俳句", Task::Creative, 3.0, false), ("стихотворени", Task::Creative, 3.0, true),
    ("сказк", Task::Creative, 3.0, true), ("рассказ", Task::Creative, 2.5, true),
    ("backstory", Task::Creative, 2.5, false), ("d&d", Task::Creative, 2.0, false), ("come up with a name", Task::Creative, 1.5, false),
    // general
    ("translate", Task::General, 2.0, true), ("rewrite", Task::General, 1.5, false), ("recipe", Task::General, 2.0, false),
    ("advice", Task::General, 1.5, false), ("tips", Task::General, 1.5, false), ("history of", Task::General, 1.0, false),
    ("recommend", Task::General, 1.0, true), ("hello", Task::General, 1.0, false), ("thanks", Task::General, 1.0, false),
    ("what is", Task::General, 0.5, false), ("who was", Task::General, 1.0, false), ("polite", Task::General, 1.0, false),
    ("proofread", Task::General, 2.0, false), ("grammar", Task::General, 1.0, false), ("traduce", Task::General, 2.0, true),
    ("tradui", Task::General, 2.0, true), ("übersetze", Task::General, 2.0, false), ("翻译", Task::General, 3.0, false),
    ("翻訳", Task::General, 3.0, false), ("переведи", Task::General, 3.0, false),
];

#[rustfmt::skip]
/// Shapes of text: (pattern, class, weight, name).
const SHAPES: &[(&str, Task, f32, &str)] = &[
    (r"```", Task::Code, 3.0, "code fence"),
    (r"(?m)^\s*(def |class \w|fn \w|function\s*\w*\(|import \w|from \w+ import|#include|public (static |class )|let \w+ ?=|const \w+ ?=|var \w+ ?=|package \w|using \w|func \w)", Task::Code, 2.5, "code line"),
    (r"(?m)[{};]\s*$", Task::Code, 1.0, "statement ends"),
    (r"\w+\([^()\n]*\)\s*(\{|:\s*$|=>|->)", Task::Code, 1.5, "definition"),
    (r"Traceback \(most recent|Exception in thread|\bat [\w.$]+\([\w.]+:\d+\)|error\[E\d+\]|panicked at|Uncaught \w*Error|\w+Error: ", Task::Code, 3.0, "stack trace"),
    (r"(?i)\bselect\s+[\w*,. ]+\s+from\s+\w|\binsert\s+into\b|\bcreate\s+table\b|\bgroup\s+by\b", Task::Code, 3.0, "SQL"),
    (r"(?m)^\s*\$ \w+", Task::Code, 1.5, "shell prompt"),
    (r"\w\.(py|js|ts|tsx|rs|go|java|cpp|rb|php|sh|ya?ml|toml|sql|css|html|jsx|kt|cs)\b", Task::Code, 1.5, "source file name"),
    (r"\b\w+_\w+\(|\b[a-z]+[A-Z]\w*\(|\w+\.\w+\(", Task::Code, 1.5, "call"),
    // `-` and `/` only with spaces around: not dates, times, ranges or scores
    (r"\d\s*[+*×÷^]\s*\(?\d|\d\s[-/]\s\(?\d", Task::Math, 2.0, "arithmetic"),
    (r"[a-z]\^\d|\\frac|\\int|\\sum|\\sqrt|√|∫|∑|≤|≥|\bd[xy]/d[xy]\b|\bf\(x\)", Task::Math, 2.5, "math notation"),
    (r"\b\d*[a-z]\s*[+\-]\s*\d+\s*=\s*-?\d+|\b\d+[a-z]\b\s*[+\-=]", Task::Math, 2.5, "equation"),
    (r"\d+(\.\d+)?\s*%|\$\d", Task::Math, 0.7, "percent or money"),
    (r"\b\d+(\.\d+)?\s?(g|kg|mg|ml|l|cm|mm|m|km|mph|km/h|kWh|°C|°F)\b", Task::Math, 1.5, "quantity with unit"),
    (r"(?i)\bhow (many|much)\b[^?]*\d|\d[^?]*\bhow (many|much)\b", Task::Math, 1.5, "quantity question"),
    (r"(?i)\b(sin|cos|tan|log|ln|exp)\b\s*\(?\d*[a-z]\b", Task::Math, 2.5, "function of x"),
    (r"(?i)\b(write|give me|create|generate|make)\b( me)?( an?| the)?( \w+)? (function|script|class|method|program|query|regex|unit tests?|endpoint|component|cli)\b", Task::Code, 2.0, "asks for code"),
    (r"`[^`\n][^`\n]+`", Task::Code, 2.0, "inline code"),
    (r"(^|\s)/(etc|usr|var|home|tmp|opt)/", Task::Code, 1.5, "file path"),
    (r"(?i)\b(this|these|the following|below|here's|here is|from this)\b[^.?!\n]*\b(emails?|tickets?|list|transcript|log|chat|address|sentences|text|document|messages?|reviews?|invoices?|receipts?|table|report|notes|paragraph|passage|article|lines)\b", Task::Extraction, 1.5, "given material"),
    (r"(?i)\bshould (i|we)\b[^?.]*\bor\b", Task::Reasoning, 2.0, "choice between options"),
    (r"(?i)^\s*what (has|is|can|gets|goes)\b[^?]*\bbut\b", Task::Reasoning, 2.5, "riddle"),
    (r"(?i)\b(from|in) (the|this) (following|text|email|document|passage|paragraph|message|review|article|invoice|transcript|note|notes|list|contract|report|log)\b", Task::Extraction, 1.5, "given text"),
    (r"(?i)\bif\b[^.?!]+\bthen\b", Task::Reasoning, 1.0, "if-then"),
    (r"(?i)\b(all|some|no) \w+ are \w+", Task::Reasoning, 2.0, "syllogism"),
];

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
        // a full DFA: ~1 ns a byte where the default (NFA) is several
        .kind(Some(AhoCorasickKind::DFA))
        .build(KEYWORDS.iter().map(|k| k.0))
        .ok()?;
    // ASCII word boundaries keep every pattern on the regex crate's fast DFA engines
    // ASCII word boundaries keep every pattern on the fast DFA engines
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
    let mut h = HEAD;
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = s.len() - TAIL;
    while !s.is_char_boundary(t) {
        t += 1;
    }
    (&s[..h], &s[t..])
}

/// Word characters for ASCII keywords' boundaries (so "Pythonで" still finds "python").
fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
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
        self.scores[task.slot()] += points;
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
        let text = &text[..floor(text, shape_bytes.min(text.len()))];
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

/// Build the matchers (Aho-Corasick automaton, regular expressions) ahead of the first request.
pub fn warm_up() {
    let _ = classify(&Input { prompt: "warm up: write a function, solve 2 + 2 = x", ..Input::default() });
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
        let cut = floor(material, MATERIAL_WINDOW.min(material.len()));
        t.scan(m, &material[..cut], 0.4, MATERIAL_SHAPES);
        if material.len() > 2 * MATERIAL_WINDOW {
            t.scan(m, &material[ceil(material, material.len() - MATERIAL_WINDOW)..], 0.4, 0);
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
    let mut order: Vec<Task> = Task::SCORED.to_vec();
    order.sort_by(|a, b| t.scores[b.slot()].total_cmp(&t.scores[a.slot()]));
    let best = order.first().copied().unwrap_or(Task::General);
    let s1 = t.scores[best.slot()];
    let s2 = order.get(1).map_or(0.0, |x| t.scores[x.slot()]);
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
    let cut =
        [":\n", "\n\n", ": \n"].iter().filter_map(|sep| s[..floor(s, limit)].find(sep).map(|i| (i, sep.len()))).min();
    match cut {
        Some((i, len)) if i >= 12 && s.len() - (i + len) >= (i + len).max(60) => (&s[..i + 1], &s[i + len..]),
        _ => (s, ""),
    }
}

fn ceil(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
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
