//! `freeway plugins new provider NAME [--lang rust|python|js] [--dir PARENT]`: a buildable
//! project folder `NAME/` for a provider component of an OpenAI-compatible upstream that declares
//! itself (drop `NAME.wasm` into the providers folder, set `<ENV>_API_KEY`, done).
//!
//! The templates (`host/templates/provider/<lang>/`) and the WIT package (`wit/`) are compiled
//! into the binary, so an installed `freeway` scaffolds projects for the WIT it speaks. Template
//! placeholders: `{{name}}` (the project and file name), `{{id}}` (the provider id, the same),
//! `{{ENV}}` (the upper-case environment prefix: `acme-ai` -> `ACME_AI`), `{{Name}}` (a display
//! name: `Acme Ai`) and `{{crate}}` (the Rust library's file name: `acme_ai`).

use std::path::{Path, PathBuf};

/// The language of a scaffolded project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// a Rust crate (wit-bindgen), built with cargo for wasm32-wasip2
    Rust,
    /// a Python module, built with componentize-py
    Python,
    /// a JavaScript module, built with componentize-js
    Js,
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// What to scaffold: only "provider" for now
    pub kind: String,
    /// The project's name, which is also the provider id and the component's file name:
    /// lower-case letters, digits and '-' (e.g. `acme-ai`)
    pub name: String,
    /// The language to write the provider in
    #[arg(long, default_value = "rust")]
    pub lang: Lang,
    /// The folder to create `NAME/` in (default: the current folder)
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The WIT package every project gets in `wit/` (the files `bindings.rs` is generated from).
const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("provider.wit", include_str!("../../../wit/provider.wit")),
    ("policy.wit", include_str!("../../../wit/policy.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// (path in the project, template) per language.
const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../templates/provider/rust/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("../../templates/provider/rust/src/lib.rs")),
    ("rustfmt.toml", include_str!("../../templates/provider/rust/rustfmt.toml")),
    ("README.md", include_str!("../../templates/provider/rust/README.md")),
    (".gitignore", include_str!("../../templates/provider/rust/gitignore")),
];
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../../templates/provider/python/app.py")),
    ("README.md", include_str!("../../templates/provider/python/README.md")),
    (".gitignore", include_str!("../../templates/provider/python/gitignore")),
];
const JS: &[(&str, &str)] = &[
    ("provider.js", include_str!("../../templates/provider/js/provider.js")),
    ("package.json", include_str!("../../templates/provider/js/package.json")),
    ("README.md", include_str!("../../templates/provider/js/README.md")),
    (".gitignore", include_str!("../../templates/provider/js/gitignore")),
];

pub fn run(args: &NewArgs) -> i32 {
    if args.kind != "provider" {
        eprintln!(
            "freeway plugins new: cannot scaffold a \"{}\": only `provider` for now (freeway plugins new provider NAME)",
            args.kind
        );
        return 2;
    }
    if let Err(m) = validate_name(&args.name) {
        eprintln!("freeway plugins new: {m}");
        return 2;
    }
    let parent = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dest = parent.join(&args.name);
    if let Err(m) = check_dest(&dest) {
        eprintln!("freeway plugins new: {m}");
        return 2;
    }
    let files = files(&args.name, args.lang);
    if let Err(m) = write(&dest, &files) {
        eprintln!("freeway plugins new: {m}");
        return 1;
    }
    println!("Created {} ({} provider \"{}\"):", dest.display(), lang_name(args.lang), args.name);
    for (path, _) in &files {
        println!("  {path}");
    }
    println!();
    println!("{}", next_steps(&dest, &args.name, args.lang));
    0
}

/// A project name: the provider id, the `.wasm` file name and (upper-cased) the environment
/// variables' prefix, so it is kept to what all of them accept.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a provider name: use lower-case letters, digits and '-', starting with a letter \
             and not ending with '-' (at most 64 characters; e.g. acme-ai)"
        ))
    }
}

/// The destination must not exist, or be an empty folder.
fn check_dest(dest: &Path) -> Result<(), String> {
    if !dest.exists() {
        return Ok(());
    }
    if !dest.is_dir() {
        return Err(format!("{} exists and is not a folder", dest.display()));
    }
    let mut entries = std::fs::read_dir(dest).map_err(|e| format!("cannot read {}: {e}", dest.display()))?;
    if entries.next().is_some() {
        return Err(format!("{} exists and is not empty: choose another name or --dir", dest.display()));
    }
    Ok(())
}

/// The upper-case environment prefix of a provider id, as the gateway derives it
/// (`acme-ai` -> `ACME_AI`: `ACME_AI_API_KEY`, `ACME_AI_BASE_URL`).
pub fn env_prefix(name: &str) -> String {
    name.to_uppercase().replace(['-', '.'], "_")
}

/// `acme-ai` -> `Acme Ai`.
fn display_name(name: &str) -> String {
    let words: Vec<String> = name
        .split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    words.join(" ")
}

fn fill(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{id}}", name)
        .replace("{{ENV}}", &env_prefix(name))
        .replace("{{Name}}", &display_name(name))
        .replace("{{crate}}", &name.replace('-', "_"))
}

/// Every file of the project: (path relative to `NAME/`, contents).
pub fn files(name: &str, lang: Lang) -> Vec<(String, String)> {
    let templates = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    let mut out: Vec<(String, String)> =
        templates.iter().map(|(path, template)| ((*path).to_owned(), fill(template, name))).collect();
    out.extend(WIT.iter().map(|(file, text)| (format!("wit/{file}"), (*text).to_owned())));
    out
}

fn write(dest: &Path, files: &[(String, String)]) -> Result<(), String> {
    for (rel, contents) in files {
        let path = dest.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "a Rust",
        Lang::Python => "a Python",
        Lang::Js => "a JavaScript",
    }
}

fn next_steps(dest: &Path, name: &str, lang: Lang) -> String {
    let env = env_prefix(name);
    let (source, build, built) = match lang {
        Lang::Rust => (
            "src/lib.rs",
            "cargo build --release --target wasm32-wasip2   # once: rustup target add wasm32-wasip2".to_owned(),
            format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_")),
        ),
        Lang::Python => (
            "app.py",
            format!(
                "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1\n  \
                 .venv/bin/componentize-py -d wit -w declared-provider componentize app -o {name}.wasm"
            ),
            format!("{name}.wasm"),
        ),
        Lang::Js => ("provider.js", "npm install && npm run build".to_owned(), format!("{name}.wasm")),
    };
    format!(
        "Next:\n  \
         cd {dir}\n  \
         # set DEFAULT_BASE_URL in {source} to the upstream's base URL, then build:\n  \
         {build}\n  \
         # install: copy it into the gateway's providers folder (`freeway paths` shows the folder)\n  \
         cp {built} <providers folder>/{name}.wasm\n  \
         # and give the gateway a key ({env}_BASE_URL, if set, points it elsewhere)\n  \
         {env}_API_KEY=... freeway serve\n\
         More in {readme}.",
        dir = dest.display(),
        readme = dest.join("README.md").display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str, lang: Lang, dir: &Path) -> NewArgs {
        NewArgs { kind: "provider".into(), name: name.into(), lang, dir: Some(dir.to_owned()) }
    }

    fn read(dir: &Path, rel: &str) -> String {
        std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    #[test]
    fn every_language_is_scaffolded_with_placeholders_filled() {
        let expected: &[(Lang, &[&str], &str)] = &[
            (Lang::Rust, &["Cargo.toml", "src/lib.rs", "rustfmt.toml", "README.md", ".gitignore"], "src/lib.rs"),
            (Lang::Python, &["app.py", "README.md", ".gitignore"], "app.py"),
            (Lang::Js, &["provider.js", "package.json", "README.md", ".gitignore"], "provider.js"),
        ];
        for (lang, project_files, source) in expected {
            let tmp = tempfile::tempdir().unwrap();
            assert_eq!(run(&args("acme-ai", *lang, tmp.path())), 0, "{lang:?}");
            let dir = tmp.path().join("acme-ai");
            for rel in *project_files {
                assert!(!read(&dir, rel).contains("{{"), "{lang:?} {rel} has a placeholder left");
            }
            for (file, text) in WIT {
                assert_eq!(read(&dir, &format!("wit/{file}")), *text, "wit/{file}");
            }
            let src = read(&dir, source);
            assert!(src.contains("\"acme-ai\""), "{lang:?}: the provider id");
            assert!(src.contains("ACME_AI_API_KEY"), "{lang:?}: the key variable");
            assert!(src.contains("Acme Ai"), "{lang:?}: the display name");
            let readme = read(&dir, "README.md");
            assert!(readme.contains("ACME_AI_API_KEY") && readme.contains("ACME_AI_BASE_URL"), "{lang:?} README");
            assert!(readme.contains("freeway paths") && readme.contains("acme-ai.wasm"), "{lang:?} README");
        }
    }

    #[test]
    fn language_specific_details() {
        let tmp = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let parent = tmp.path().join(format!("{lang:?}"));
            assert_eq!(run(&args("acme-ai", lang, &parent)), 0);
        }
        let rust = tmp.path().join("Rust/acme-ai");
        let cargo = read(&rust, "Cargo.toml");
        assert!(cargo.contains("name = \"acme-ai\"") && cargo.contains("[workspace]"));
        assert!(cargo.contains("crate-type = [\"cdylib\"]"));
        assert!(read(&rust, "src/lib.rs").contains("world: \"declared-provider\""));
        assert!(read(&rust, "README.md").contains("target/wasm32-wasip2/release/acme_ai.wasm"));
        let python = tmp.path().join("Python/acme-ai");
        assert!(
            read(&python, "README.md")
                .contains("componentize-py -d wit -w declared-provider componentize app -o acme-ai.wasm")
        );
        let js = tmp.path().join("Js/acme-ai");
        let package = read(&js, "package.json");
        assert!(package.contains("\"name\": \"acme-ai\"") && package.contains("-o acme-ai.wasm"));
        assert!(package.contains("-n declared-provider -d http -d fetch-event"));
    }

    #[test]
    fn componentize_js_is_pinned_as_the_example_policy_pins_it() {
        let example = include_str!("../../../policies/examples/js/package.json");
        let pin = |text: &str| -> Option<String> {
            let at = text.find("\"@bytecodealliance/componentize-js\"")?;
            text[at..].lines().next().map(str::to_owned)
        };
        assert!(pin(example).is_some());
        assert_eq!(pin(include_str!("../../templates/provider/js/package.json")), pin(example));
    }

    #[test]
    fn refuses_bad_input_and_a_folder_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "Acme", "acme_ai", "-acme", "acme-", "1acme", "acme.ai", "acme ai", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
            assert_eq!(run(&args(bad, Lang::Rust, tmp.path())), 2, "{bad:?}");
        }
        for good in ["a", "acme-ai", "acme2", "a-b-c9"] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
        let policy = NewArgs { kind: "policy".into(), ..args("x", Lang::Rust, tmp.path()) };
        assert_eq!(run(&policy), 2);
        // an empty folder is fine; a non-empty one is refused and left alone
        std::fs::create_dir(tmp.path().join("empty")).unwrap();
        assert_eq!(run(&args("empty", Lang::Python, tmp.path())), 0);
        std::fs::create_dir(tmp.path().join("used")).unwrap();
        std::fs::write(tmp.path().join("used/keep.txt"), "mine").unwrap();
        assert_eq!(run(&args("used", Lang::Js, tmp.path())), 2);
        assert_eq!(std::fs::read_dir(tmp.path().join("used")).unwrap().count(), 1);
        std::fs::write(tmp.path().join("file"), "").unwrap();
        assert_eq!(run(&args("file", Lang::Js, tmp.path())), 2);
    }

    #[test]
    fn names_become_env_prefixes_and_display_names() {
        assert_eq!(env_prefix("acme-ai"), "ACME_AI");
        assert_eq!(display_name("acme-ai"), "Acme Ai");
        assert_eq!(display_name("x"), "X");
        assert_eq!(fill("{{crate}} {{ENV}}_API_KEY {{id}}", "a-b"), "a_b A_B_API_KEY a-b");
    }
}
