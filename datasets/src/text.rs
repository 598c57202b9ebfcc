//! Text files as people have them: UTF-8 with or without a byte-order mark, UTF-16 with one (what
//! Excel's "Unicode text" and PowerShell's `>` write), and any line ending (LF, CRLF, or the CR
//! alone of classic Mac OS). Anything else is refused naming the file, the physical line and
//! column of the first byte that is not UTF-8, the encoding it looks like and how to convert it.
//!
//! Line numbers are physical lines whatever the endings, as an editor shows them: a CRLF counts
//! once, a lone CR counts as a line end (the CSV reader's own counter counts `\n` only, so it put
//! every error of a CR-only file on line 1).

use std::path::Path;

use crate::{Error, io_error};

/// Reads `path` as text ([`decode`]).
pub fn read(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    decode(path, bytes)
}

/// The text of a file's bytes: UTF-8 (a leading BOM dropped) or UTF-16 LE/BE with its BOM.
///
/// # Errors
/// [`Error::Encoding`] for bytes that are not UTF-8 (with the line, column and a guess of the
/// encoding) or a UTF-16 file that is cut short or holds an unpaired surrogate.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, Error> {
    let utf16 = match bytes.get(..2) {
        Some([0xFF, 0xFE]) => Some(u16::from_le_bytes as fn([u8; 2]) -> u16),
        Some([0xFE, 0xFF]) => Some(u16::from_be_bytes as fn([u8; 2]) -> u16),
        _ => None,
    };
    if let Some(unit) = utf16 {
        let body = &bytes[2..];
        let units: Vec<u16> = body.chunks_exact(2).map(|pair| unit([pair[0], pair[1]])).collect();
        let decoded = if body.len().is_multiple_of(2) { String::from_utf16(&units).ok() } else { None };
        return decoded.ok_or_else(|| Error::Encoding {
            file: path.to_path_buf(),
            line: None,
            message: "starts with a UTF-16 byte-order mark but is not valid UTF-16 (cut short, or an unpaired \
                      surrogate): save it again as UTF-8"
                .to_owned(),
        });
    }
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            // NUL is valid UTF-8, but no text file holds one: ASCII saved as UTF-16 without a BOM.
            if let Some(at) = text.find('\0') {
                let line = LineIndex::new(&text).line_of(at);
                return Err(Error::Encoding {
                    file: path.to_path_buf(),
                    line: Some(line),
                    message: "holds NUL bytes (the file looks like UTF-16 without a byte-order mark): save it \
                              again as UTF-8, e.g. `iconv -f UTF-16LE -t UTF-8`"
                        .to_owned(),
                });
            }
            Ok(text)
        }
        Err(err) => {
            let bytes = err.into_bytes();
            Err(not_utf8(path, &bytes, 0, 1))
        }
    }
}

/// The error for `bytes` (the file's, or one line's starting at physical line `first_line`),
/// whose first invalid UTF-8 byte lies at or after `from`.
pub fn not_utf8(path: &Path, bytes: &[u8], from: usize, first_line: usize) -> Error {
    let valid_up_to = from + std::str::from_utf8(&bytes[from..]).err().map_or(0, |err| err.valid_up_to());
    let before = &bytes[..valid_up_to];
    let index = LineIndex::new_bytes(before);
    let line = first_line + index.starts.len() - 1;
    let line_start = *index.starts.last().unwrap_or(&0);
    // Columns count characters; the part before the bad byte is valid UTF-8.
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    let byte = bytes[valid_up_to];
    let nuls = bytes.iter().take(4096).filter(|&&byte| byte == 0).count();
    let (looks, iconv) = if nuls * 4 >= bytes.len().min(4096) {
        ("UTF-16 without a byte-order mark", "UTF-16LE")
    } else {
        ("Latin-1 / Windows-1252", "WINDOWS-1252")
    };
    Error::Encoding {
        file: path.to_path_buf(),
        line: Some(line),
        message: format!(
            "not UTF-8: byte 0x{byte:02X} at column {column} (the file looks like {looks}); convert it, e.g. \
             `iconv -f {iconv} -t UTF-8 {name} > {stem}.utf8{extension}`, and use the converted file",
            name = path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
            stem = path.file_stem().map_or_else(String::new, |stem| stem.to_string_lossy().into_owned()),
            extension = path.extension().map_or_else(String::new, |ext| format!(".{}", ext.to_string_lossy())),
        ),
    }
}

/// The lines of a stream (a corpus too large to hold) with their 1-based numbers, split at `\n`
/// (a `\r` before it dropped; a UTF-8 BOM at the start dropped). A line that is not UTF-8 is an
/// [`Error::Encoding`] naming it; the stream ends after an error.
pub fn stream_lines<R: std::io::BufRead>(
    path: &Path,
    mut reader: R,
) -> impl Iterator<Item = Result<(usize, String), Error>> + use<R> {
    let path = path.to_path_buf();
    let mut number = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(source) => {
                done = true;
                return Some(Err(Error::Io { path: path.clone(), source }));
            }
        }
        number += 1;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if number == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        match String::from_utf8(bytes) {
            Ok(line) => Some(Ok((number, line))),
            Err(err) => {
                done = true;
                Some(Err(not_utf8(&path, err.as_bytes(), 0, number)))
            }
        }
    })
}

/// The physical lines of `text` with their 1-based numbers, split at `\r\n`, `\n` or a lone
/// `\r` as [`LineIndex`] splits them (the terminators are not part of the lines).
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let starts = LineIndex::new(text).starts;
    (0..starts.len()).map_while(move |index| {
        let start = starts[index];
        // A final terminator starts no line.
        (start < text.len()).then(|| {
            let end = starts.get(index + 1).copied().unwrap_or(text.len());
            // One terminator ends each line but the last, and a line holds no other.
            (index + 1, text[start..end].trim_end_matches(['\r', '\n']))
        })
    })
}

/// Where each physical line of a text starts, to turn a byte offset into a line number.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// The index of `text`'s lines.
    pub fn new(text: &str) -> LineIndex {
        LineIndex::new_bytes(text.as_bytes())
    }

    fn new_bytes(bytes: &[u8]) -> LineIndex {
        let mut starts = vec![0];
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b'\r' if bytes.get(at + 1) == Some(&b'\n') => {
                    starts.push(at + 2);
                    at += 2;
                }
                b'\r' | b'\n' => {
                    starts.push(at + 1);
                    at += 1;
                }
                _ => at += 1,
            }
        }
        LineIndex { starts }
    }

    /// The 1-based physical line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }

    /// The 1-based physical line of the first byte at or after `offset` that ends no line: where
    /// a record starts whose reader reports the end of the previous line (the csv crate gives the
    /// `\n` of a `\r\n`) or the blank lines it skipped.
    pub fn line_of_content(&self, text: &str, offset: usize) -> usize {
        let skipped = text
            .as_bytes()
            .get(offset..)
            .map_or(0, |rest| rest.iter().take_while(|&&byte| byte == b'\r' || byte == b'\n').count());
        self.line_of((offset + skipped).min(text.len().saturating_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_every_ending() {
        let all: Vec<(usize, &str)> = lines("a\r\nb\rc\n\nd").collect();
        assert_eq!(all, [(1, "a"), (2, "b"), (3, "c"), (4, ""), (5, "d")]);
        let index = LineIndex::new("a\r\nb\rc\n\nd");
        let lines_of: Vec<usize> = [0, 1, 2, 3, 5, 7, 8].iter().map(|&at| index.line_of(at)).collect();
        assert_eq!(lines_of, [1, 1, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn boms_give_the_text_and_other_bytes_their_line() {
        let path = Path::new("t.csv");
        assert_eq!(decode(path, b"\xEF\xBB\xBFa,b".to_vec()).unwrap(), "a,b");
        let utf16le: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("é,\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(decode(path, utf16le).unwrap(), "é,\n");
        let utf16be: Vec<u8> = [0xFE, 0xFF].into_iter().chain("x".encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert_eq!(decode(path, utf16be).unwrap(), "x");
        assert!(decode(path, vec![0xFF, 0xFE, 0x41]).unwrap_err().to_string().contains("UTF-16"));
        let latin1 = b"a,b\r\nok,1\r\ncaf\xE9,0\n".to_vec();
        let message = decode(path, latin1).unwrap_err().to_string();
        assert!(message.starts_with("t.csv:3: not UTF-8: byte 0xE9 at column 4"), "{message}");
        assert!(message.contains("Latin-1") && message.contains("iconv -f WINDOWS-1252"), "{message}");
        let no_bom: Vec<u8> = "ab\n".encode_utf16().flat_map(u16::to_le_bytes).chain([0x00, 0xD8]).collect();
        assert!(decode(path, no_bom).unwrap_err().to_string().contains("UTF-16 without a byte-order mark"));
        let ascii_utf16: Vec<u8> = "a,b\nc,d\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let message = decode(path, ascii_utf16).unwrap_err().to_string();
        assert!(message.starts_with("t.csv:1: holds NUL bytes"), "{message}");
    }
}
