//! The server-sent events decoder: bytes of a streamed answer in, events out.
//!
//! Why apart: the event-stream format (WHATWG) knows nothing of chat completions, and network
//! chunks split its lines anywhere; a pure incremental decoder can be tested on every split
//! point. What an event's JSON means is read in `answer.rs`.

/// The longest SSE line or event accepted; bounds memory when a stream never ends a line.
const SSE_EVENT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One server-sent event a chat stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// An event's data (its `data:` lines joined with `\n`): one JSON chunk.
    Data(String),
    /// `data: [DONE]`: the provider finished the stream.
    Done,
}

/// An incremental SSE parser (the WHATWG event-stream format): bytes in, events out, with
/// lines split anywhere across network chunks.
///
/// Comments (`:` lines), blank keep-alive lines and fields other than `data` are ignored; an
/// event is dispatched at the blank line that ends it; `\r\n` line ends are accepted.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The bytes of a line whose end has not arrived yet.
    partial_line: Vec<u8>,
    /// The data of the event being read, if a `data:` line has been seen.
    data: Option<String>,
}

impl SseDecoder {
    /// Feed the next network chunk; returns the events it completed. Fails when one line or
    /// event grows past a bound (a stream that is not SSE, or a runaway one).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial_line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.partial_line);
            self.line(&line, &mut events);
        }
        self.partial_line.extend_from_slice(rest);
        let pending = self.partial_line.len() + self.data.as_ref().map_or(0, String::len);
        if pending > SSE_EVENT_BYTES_MAX {
            return Err(format!(
                "a stream event grew past {SSE_EVENT_BYTES_MAX} bytes without ending; the answer is not a valid event stream"
            ));
        }
        Ok(events)
    }

    /// The stream ended: a last line without its newline, and the event it completes.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.line(&line, &mut events);
        }
        self.dispatch(&mut events);
        events
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(b":") {
            return; // a comment, often a keep-alive
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        if field != "data" {
            return; // event:, id:, retry: say nothing a chat stream needs
        }
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(value);
            }
            None => self.data = Some(value.to_string()),
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        if let Some(data) = self.data.take() {
            if data.trim() == "[DONE]" {
                events.push(SseEvent::Done);
            } else if !data.trim().is_empty() {
                events.push(SseEvent::Data(data));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for piece in pieces {
            events.extend(decoder.feed(piece).unwrap());
        }
        events.extend(decoder.finish());
        events
    }

    #[test]
    fn sse_events_comments_and_done() {
        let stream = b": keep-alive\n\ndata: {\"a\":1}\n\nevent: message\nid: 7\ndata: {\"a\":2}\n\n\n\ndata: [DONE]\n\n";
        assert_eq!(
            decode_all(&[stream]),
            vec![
                SseEvent::Data("{\"a\":1}".into()),
                SseEvent::Data("{\"a\":2}".into()),
                SseEvent::Done,
            ]
        );
        // No space after the colon, CRLF line ends, multi-line data.
        assert_eq!(
            decode_all(&[b"data:x\r\n\r\ndata: one\r\ndata: two\r\n\r\ndata:[DONE]\r\n\r\n"]),
            vec![
                SseEvent::Data("x".into()),
                SseEvent::Data("one\ntwo".into()),
                SseEvent::Done,
            ]
        );
    }

    #[test]
    fn sse_lines_split_anywhere() {
        let stream: &[u8] =
            "data: {\"t\":\"héllo\"}\r\n\r\n: ping\n\ndata: {\"t\":\"wörld\"}\n\ndata: [DONE]\n\n"
                .as_bytes();
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 3);
        // Every split point, including inside a multi-byte character and between \r and \n.
        for cut in 0..=stream.len() {
            assert_eq!(
                decode_all(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut {cut}"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes), whole);
    }

    #[test]
    fn sse_stream_without_final_blank_line() {
        assert_eq!(
            decode_all(&[b"data: {\"a\":1}\n\ndata: [DONE]"]),
            vec![SseEvent::Data("{\"a\":1}".into()), SseEvent::Done]
        );
    }

    #[test]
    fn sse_runaway_line_is_refused() {
        let mut decoder = SseDecoder::default();
        let big = vec![b'x'; SSE_EVENT_BYTES_MAX + 1];
        assert!(decoder.feed(&big).is_err());
    }
}
