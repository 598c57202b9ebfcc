//! Where a field of a YAML document is written, for errors that point at a line: [`locate`]
//! follows a field path (`experiments[1].search.d_min`) through block and flow styles, and
//! [`second_key_line`] finds the second definition of a key that a mapping defines twice. Plain
//! text processing: it knows nothing about experiments.

/// The 1-based line of a field path (`experiments[1].search.d_min`, `methods.said.lr`) in a YAML
/// text written in block style, by following keys and list items; a path into a flow value
/// (`training: {epochs: 1}`, `tasks: [sst2, mrpc]`) ends on that value's line. `None` when the path
/// is not spelled out (a default).
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |idx: usize| lines[idx].len() - lines[idx].trim_start().len();
    let meaningful = |idx: usize| !lines[idx].trim().is_empty() && !lines[idx].trim_start().starts_with('#');
    let is_item = |idx: usize| lines[idx].trim_start().starts_with("- ");
    // The children of the current node: lines (start, end) and, for a list item, its own line.
    let (mut start, mut end) = (0usize, lines.len());
    let mut item_line: Option<usize> = None;
    let mut found: Option<usize> = None;
    let mut in_flow = false;
    for segment in split_path(path) {
        if in_flow {
            // Inside a flow value: a key must appear on that line; indices stay there.
            if let Segment::Key(key) = &segment
                && !lines[found?].contains(&format!("{key}:"))
            {
                return None;
            }
            continue;
        }
        let children: Vec<usize> = (start..end).filter(|&idx| meaningful(idx)).collect();
        let child_indent = children.first().map(|&idx| indent(idx));
        let line = match &segment {
            Segment::Key(key) => {
                let is_key =
                    |idx: usize| lines[idx].trim_start().trim_start_matches("- ").starts_with(&format!("{key}:"));
                item_line.filter(|&idx| is_key(idx)).or_else(|| {
                    children
                        .iter()
                        .copied()
                        .find(|&idx| Some(indent(idx)) == child_indent && !is_item(idx) && is_key(idx))
                })?
            }
            Segment::Index(index) => {
                let items: Vec<usize> =
                    children.iter().copied().filter(|&idx| Some(indent(idx)) == child_indent && is_item(idx)).collect();
                *items.get(*index)?
            }
        };
        found = Some(line);
        let value = lines[line].trim_start().trim_start_matches("- ").split_once(':').map_or("", |(_, v)| v.trim());
        in_flow = matches!(segment, Segment::Key(_)) && (value.starts_with('{') || value.starts_with('['));
        let own_indent = indent(line);
        end = (line + 1..lines.len()).find(|&idx| meaningful(idx) && indent(idx) <= own_indent).unwrap_or(lines.len());
        start = line + 1;
        item_line = matches!(segment, Segment::Index(_)).then_some(line);
        if matches!(segment, Segment::Key(_)) && is_item(line) {
            // `- key: value` inside an item: its children sit deeper than the item's content.
            let content_indent = own_indent + 2;
            end = (line + 1..lines.len())
                .find(|&idx| meaningful(idx) && indent(idx) <= content_indent)
                .unwrap_or(lines.len());
        }
    }
    found.map(|line| line + 1)
}

/// One step of a field path: a mapping key or a list index.
enum Segment {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(key, rest)| (key, rest));
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_owned()));
        }
        for index in rest.split('[') {
            if let Ok(index) = index.trim_end_matches(']').parse() {
                segments.push(Segment::Index(index));
            }
        }
    }
    segments
}

/// The 1-based line of the second `key:` of the mapping whose first key is at (`line`, `column`),
/// both 1-based: a block mapping's keys at that column, or a flow mapping's (`{a: 1, a: 2}`).
pub fn second_key_line(text: &str, line: usize, column: usize, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let starts_with_key = |rest: &str| {
        let rest = rest.trim_start();
        [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|spelled| rest.strip_prefix(spelled.as_str()).is_some_and(|after| after.trim_start().starts_with(':')))
    };
    let first = lines.get(line - 1)?;
    let column_byte = first.char_indices().nth(column - 1).map_or(first.len(), |(idx, _)| idx);
    let brace = if first[column_byte..].starts_with('{') {
        Some(column_byte)
    } else {
        first[..column_byte].trim_end().ends_with('{').then(|| first[..column_byte].rfind('{')).flatten()
    };
    if let Some(brace) = brace {
        // A flow mapping: keys follow `{` or `,` at nesting depth 1.
        let (mut depth, mut seen) = (0usize, 0usize);
        let offset: usize = text.split_inclusive('\n').take(line - 1).map(str::len).sum::<usize>() + brace;
        for (idx, ch) in text[offset..].char_indices() {
            match ch {
                '{' | '[' => depth += 1,
                '}' | ']' => depth = depth.checked_sub(1)?,
                _ => {}
            }
            if depth == 1 && matches!(ch, '{' | ',') && starts_with_key(&text[offset + idx + 1..]) {
                seen += 1;
                if seen == 2 {
                    // The key's own line, which may follow the comma's.
                    let after = &text[offset + idx + 1..];
                    let key_at = offset + idx + 1 + (after.len() - after.trim_start().len());
                    return Some(text[..key_at].matches('\n').count() + 1);
                }
            }
            if depth == 0 {
                return None;
            }
        }
        return None;
    }
    let indent = column - 1;
    let mut seen = usize::from(starts_with_key(&first[column_byte..]));
    for (idx, text) in lines.iter().enumerate().skip(line) {
        let content = text.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let own_indent = text.len() - content.len();
        if own_indent < indent {
            return None;
        }
        if own_indent == indent && starts_with_key(content) {
            seen += 1;
            if seen == 2 {
                return Some(idx + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
description: test\ntraining:\n  epochs: 2\nexperiments:\n  - name: a\n    search: {d_min: 100}\n  - name: b\n    models:\n      - x\n      - y\n";

    #[test]
    fn paths_through_keys_items_and_flow_values() {
        assert_eq!(locate(TEXT, "description"), Some(1));
        assert_eq!(locate(TEXT, "training.epochs"), Some(3));
        assert_eq!(locate(TEXT, "experiments[0].search.d_min"), Some(6));
        assert_eq!(locate(TEXT, "experiments[1].models[1]"), Some(10));
        assert_eq!(locate(TEXT, "experiments[1].search"), None);
    }

    #[test]
    fn the_second_definition_of_a_key() {
        let block = "a: 1\nb: 2\na: 3\n";
        assert_eq!(second_key_line(block, 1, 1, "a"), Some(3));
        let flow = "m: {a: 1,\n  a: 2}\n";
        assert_eq!(second_key_line(flow, 1, 4, "a"), Some(2));
    }
}
