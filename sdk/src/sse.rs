//! Server-sent events: parse a whole body or feed it in pieces.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

/// Incremental parser: `push` text, then take complete events with `next_event`.
#[derive(Debug, Default)]
pub struct Parser {
    buf: String,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, text: &str) {
        self.buf.push_str(text);
    }

    /// The next complete event (comment-only blocks are skipped).
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let normalized_end = find_end(&self.buf)?;
            let block: String = self.buf.drain(..normalized_end.1).collect();
            if let Some(e) = parse_block(&block[..normalized_end.0]) {
                return Some(e);
            }
        }
    }

    /// Any complete-but-unterminated event left at end of input.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buf);
        parse_block(&rest)
    }
}

/// (end of block content, end including terminator)
fn find_end(buf: &str) -> Option<(usize, usize)> {
    let b = buf.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn parse_block(block: &str) -> Option<Event> {
    let mut ev = Event::default();
    let mut has_data = false;
    for line in block.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if has_data {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
                has_data = true;
            }
            "event" => ev.event = Some(value.to_owned()),
            "id" => ev.id = Some(value.to_owned()),
            _ => {}
        }
    }
    (has_data || ev.event.is_some()).then_some(ev)
}

/// Every event in a complete body.
pub fn parse_all(body: &str) -> Vec<Event> {
    let mut p = Parser::new();
    p.push(body);
    let mut out: Vec<Event> = std::iter::from_fn(|| p.next_event()).collect();
    out.extend(p.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let body = ": OPENROUTER PROCESSING\n\nevent: delta\ndata: {\"a\":1}\n\ndata: x\ndata: y\r\n\r\ndata: [DONE]";
        let evs = parse_all(body);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].event.as_deref(), Some("delta"));
        assert_eq!(evs[1].data, "x\ny");
        assert_eq!(evs[2].data, "[DONE]");
    }

    #[test]
    fn pieces_make_the_same_events() {
        let body = "data: one\n\ndata: two\n\n";
        let mut p = Parser::new();
        let mut got = Vec::new();
        for c in body.chars() {
            p.push(&c.to_string());
            while let Some(e) = p.next_event() {
                got.push(e.data);
            }
        }
        assert_eq!(got, ["one", "two"]);
    }
}
