//! `freeway chat`: a streaming chat with the gateway over HTTP, like any client. Interactive (a
//! line editor with history; `/model`, `/system`, `/clear`, `/route`, `/help`, `/quit`; Ctrl-C
//! stops the answer being written, not the session), or one-shot with `-m "..."` or a prompt on
//! stdin, printing only the answer.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::chat_view::{Answer, Route, info_line, route_lines};
use super::gateway::{CallError, Gateway};
use crate::wire::sse::{Event, SseFramer};

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Ask once and print only the answer (`-` or no terminal: the prompt is read from stdin)
    #[arg(long, short)]
    pub message: Option<String>,
    /// The model or alias to ask
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// A system prompt
    #[arg(long)]
    pub system: Option<String>,
    /// The gateway (default: the configuration's listen address)
    #[arg(long, env = "FREEWAY_URL")]
    pub url: Option<String>,
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// One conversation.
struct Session {
    model: String,
    system: Option<String>,
    history: Vec<Value>,
    /// the last request sent and how it went, for `/route`
    last: Option<(Value, Answer)>,
}

impl Session {
    fn request(&self, prompt: &str) -> Value {
        let mut messages = Vec::with_capacity(self.history.len() + 2);
        if let Some(s) = &self.system {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.extend(self.history.iter().cloned());
        messages.push(json!({"role": "user", "content": prompt}));
        json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    }
}

pub async fn run(args: ChatArgs) -> i32 {
    let loaded = crate::config::load_or_auto(args.config.as_deref()).ok();
    let gateway = match Gateway::new(args.url.as_deref(), loaded.as_ref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("freeway chat: {e}");
            return 2;
        }
    };
    let mut session =
        Session { model: args.model.clone(), system: args.system.clone(), history: Vec::new(), last: None };
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let one_shot = match args.message.as_deref() {
        Some("-") => Some(read_stdin()),
        Some(m) => Some(Ok(m.to_owned())),
        None if !stdin_is_terminal => Some(read_stdin()),
        None => None,
    };
    match one_shot {
        Some(Ok(prompt)) => once(&gateway, &session, prompt.trim()).await,
        Some(Err(e)) => {
            eprintln!("freeway chat: {e}");
            2
        }
        None => interactive(&gateway, &mut session).await,
    }
}

fn read_stdin() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| format!("reading stdin: {e}"))?;
    if s.trim().is_empty() {
        return Err("no prompt: give -m \"...\" or a prompt on stdin".to_owned());
    }
    Ok(s)
}

/// `-m`: the answer alone on stdout, errors on stderr; exit 1 if the gateway refused.
async fn once(gateway: &Gateway, session: &Session, prompt: &str) -> i32 {
    let body = session.request(prompt);
    let mut out = std::io::stdout();
    match ask(gateway, &body, &mut out, false).await {
        Ok(answer) => {
            if !answer.text.ends_with('\n') {
                println!();
            }
            0
        }
        Err(e) => {
            eprintln!("freeway chat: {e}");
            1
        }
    }
}

async fn interactive(gateway: &Gateway, session: &mut Session) -> i32 {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let dim = |t: &str| if colour { format!("\x1b[2m{t}\x1b[0m") } else { t.to_owned() };
    println!(
        "{}",
        dim(&format!("Freeway chat at {} with {} (/help for commands, Ctrl-D to leave)", gateway.url, session.model))
    );
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("freeway chat: cannot read the terminal: {e}");
            return 2;
        }
    };
    loop {
        // the line editor blocks: it runs on a blocking thread and comes back with the line
        let read = tokio::task::spawn_blocking(move || {
            let line = editor.readline("you> ");
            (editor, line)
        })
        .await;
        let Ok((back, line)) = read else { return 1 };
        editor = back;
        let line = match line {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => return 0,
            Err(e) => {
                eprintln!("freeway chat: {e}");
                return 1;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        match command(session, line) {
            Some(Command::Quit) => return 0,
            Some(Command::Said(text)) => println!("{}", dim(&text)),
            Some(Command::Route) => show_route(gateway, session, &dim).await,
            None => {
                let body = session.request(line);
                let mut out = std::io::stdout();
                match ask(gateway, &body, &mut out, true).await {
                    Ok(answer) => {
                        if !answer.text.ends_with('\n') {
                            println!();
                        }
                        println!("{}", dim(&info_line(&answer)));
                        // a stopped answer stays out of the history: the model never finished it
                        if !answer.stopped {
                            session.history.push(json!({"role": "user", "content": line}));
                            session.history.push(json!({"role": "assistant", "content": answer.text}));
                        }
                        session.last = Some((body, answer));
                    }
                    Err(e) => eprintln!("{}", if colour { format!("\x1b[31m{e}\x1b[0m") } else { e }),
                }
            }
        }
    }
}

/// What a `/` line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Quit,
    Route,
    /// done; show this
    Said(String),
}

const HELP: &str = "/model NAME  ask another model or alias (auto, auto:code, groq/llama-3.1-8b-instant, ...)\n\
/system TEXT  set the system prompt (/system alone clears it)\n\
/clear  forget the conversation\n\
/route  why the last answer went where it did\n\
/quit  leave (or Ctrl-D); Ctrl-C stops an answer being written";

/// Apply a `/command` to the session; `None` for a prompt.
fn command(session: &mut Session, line: &str) -> Option<Command> {
    let rest = line.strip_prefix('/')?;
    let (name, arg) = rest.split_once(char::is_whitespace).map_or((rest, ""), |(n, a)| (n, a.trim()));
    Some(match name {
        "quit" | "exit" | "q" => Command::Quit,
        "route" => Command::Route,
        "help" | "?" => Command::Said(HELP.to_owned()),
        "clear" => {
            session.history.clear();
            Command::Said("conversation cleared".to_owned())
        }
        "model" if arg.is_empty() => Command::Said(format!("model: {}", session.model)),
        "model" => {
            arg.clone_into(&mut session.model);
            Command::Said(format!("model: {}", session.model))
        }
        "system" if arg.is_empty() => {
            session.system = None;
            Command::Said("system prompt cleared".to_owned())
        }
        "system" => {
            session.system = Some(arg.to_owned());
            Command::Said("system prompt set".to_owned())
        }
        other => Command::Said(format!("unknown command /{other}; /help lists them")),
    })
}

async fn show_route(gateway: &Gateway, session: &Session, dim: &dyn Fn(&str) -> String) {
    let Some((body, answer)) = &session.last else {
        println!("{}", dim("nothing asked yet"));
        return;
    };
    let explained = match gateway.admin_post("/admin/route/explain", body).await {
        Ok(v) => Some(v),
        Err(CallError::Refused(401, _)) => {
            println!("{}", dim("(the gateway's ranking needs the admin key: set FREEWAY_ADMIN_KEY)"));
            None
        }
        Err(e) => {
            println!("{}", dim(&format!("(no ranking: {e})")));
            None
        }
    };
    for line in route_lines(answer, explained.as_ref()) {
        println!("{line}");
    }
}

/// Send one streaming request and write the answer to `out` as it arrives. With `interruptible`,
/// Ctrl-C stops the answer (the connection is dropped, so the gateway stops too).
async fn ask(
    gateway: &Gateway,
    body: &Value,
    out: &mut dyn std::io::Write,
    interruptible: bool,
) -> Result<Answer, String> {
    let started = Instant::now();
    let resp = gateway.client_post("/v1/chat/completions", body).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let route = resp.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).map(Route::parse);
    if !status.is_success() {
        let bytes = resp.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(format!("HTTP {}: {message}", status.as_u16()));
    }
    let mut answer = Answer { route, ..Answer::default() };
    let mut framer = SseFramer::new();
    let mut stream = resp.bytes_stream();
    let interrupt = async {
        if interruptible {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupt);
    loop {
        // the interrupt first: `ctrl_c()` listens only once polled, and a Ctrl-C pressed after the
        // first token is printed must find it listening (unbiased, a ready chunk could win the
        // first poll and the key press be lost)
        let chunk = tokio::select! {
            biased;
            () = &mut interrupt => {
                answer.stopped = true;
                break;
            }
            c = stream.next() => c,
        };
        let Some(chunk) = chunk else { break };
        let chunk = chunk.map_err(|e| format!("the answer broke off: {e}"))?;
        framer.push(&chunk);
        while let Some(raw) = framer.next_event() {
            let event = Event::parse(&raw);
            if !event.has_data || event.data == "[DONE]" {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&event.data) else { continue };
            if let Some(message) = v.pointer("/error/message").and_then(Value::as_str) {
                return Err(format!("the answer broke off: {message}"));
            }
            if let Some(text) = v.pointer("/choices/0/delta/content").and_then(Value::as_str)
                && !text.is_empty()
            {
                if answer.first_token.is_none() {
                    answer.first_token = Some(started.elapsed());
                }
                answer.text.push_str(text);
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
                answer.prompt_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
                answer.completion_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
            }
        }
    }
    answer.total = started.elapsed();
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session { model: "auto".into(), system: None, history: Vec::new(), last: None }
    }

    #[test]
    fn commands_change_the_session_and_prompts_pass_through() {
        let mut s = session();
        assert_eq!(command(&mut s, "hello there"), None);
        assert_eq!(command(&mut s, "/model auto:code"), Some(Command::Said("model: auto:code".into())));
        assert_eq!(s.model, "auto:code");
        command(&mut s, "/system  be brief ");
        assert_eq!(s.system.as_deref(), Some("be brief"));
        s.history.push(json!({"role": "user", "content": "x"}));
        command(&mut s, "/clear");
        assert!(s.history.is_empty());
        assert_eq!(command(&mut s, "/route"), Some(Command::Route));
        assert_eq!(command(&mut s, "/quit"), Some(Command::Quit));
        assert!(matches!(command(&mut s, "/frobnicate"), Some(Command::Said(t)) if t.contains("unknown command")));
    }

    #[test]
    fn a_request_carries_the_system_prompt_history_and_asks_for_usage() {
        let mut s = session();
        s.system = Some("be brief".into());
        s.history.push(json!({"role": "user", "content": "a"}));
        s.history.push(json!({"role": "assistant", "content": "b"}));
        let r = s.request("c");
        let roles: Vec<&str> = r["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(r["stream"], true);
        assert_eq!(r["stream_options"]["include_usage"], true);
    }
}
