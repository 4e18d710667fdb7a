//! A small Server-Sent Events reader (the HTML Living Standard's event-stream format) over a
//! reqwest response: `id`, `event` and `data` fields, comments skipped, events split by a blank
//! line. `retry` is not needed: the client chooses its own reconnection delay.

use reqwest::Response;

/// Longest event accepted: the registry's events are a few KiB; a longer one is not its stream.
const MAX_EVENT: usize = 16 << 20;

/// One event as sent.
#[derive(Debug, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    #[error("an event is longer than {} MiB", MAX_EVENT >> 20)]
    TooLong,
}

pub struct Reader {
    response: Response,
    buffer: Vec<u8>,
    pending: Event,
    has_data: bool,
}

impl Reader {
    pub fn new(response: Response) -> Self {
        Self { response, buffer: Vec::new(), pending: Event::default(), has_data: false }
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, SseError> {
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]);
                if let Some(event) = self.line(line.strip_suffix('\r').unwrap_or(&line)) {
                    return Ok(Some(event));
                }
            }
            if self.buffer.len() + self.pending.data.len() > MAX_EVENT {
                return Err(SseError::TooLong);
            }
            match self.response.chunk().await? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }

    /// Takes one line; a blank line completes the pending event.
    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let complete = self.has_data || !self.pending.event.is_empty();
            let event = std::mem::take(&mut self.pending);
            self.has_data = false;
            return complete.then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.pending.id = Some(value.to_owned()),
            "event" => self.pending.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}
