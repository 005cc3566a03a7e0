//! A tiny text-table formatter for the operator commands (no dependencies).

/// Rows of cells under a header; numeric columns are right-aligned.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn numeric(&self, col: usize) -> bool {
        let mut any = false;
        for r in &self.rows {
            let c = r.get(col).map(String::as_str).unwrap_or("");
            if c.is_empty() || c == "-" {
                continue;
            }
            if c.replace([',', '.', '%'], "").parse::<i128>().is_err() {
                return false;
            }
            any = true;
        }
        any
    }

    pub fn render(&self) -> String {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .chain(self.headers.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let right: Vec<bool> = (0..cols).map(|c| self.numeric(c)).collect();
        let line = |cells: &[String]| -> String {
            let mut out = String::new();
            for c in 0..cols {
                let cell = cells.get(c).map(String::as_str).unwrap_or("");
                let pad = width[c].saturating_sub(cell.chars().count());
                if c > 0 {
                    out.push_str("  ");
                }
                if right[c] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if c + 1 < cols {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        out.push_str(
            &width
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// A two-column "field value" table, for one record.
pub fn record(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian; 0 prints as `-`).
pub fn utc(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The first bytes of a hash as hex, for tables.
pub fn short_hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// All bytes as hex, for JSON.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_numbers_right_and_text_left() {
        let mut t = Table::new(&["id", "role"]);
        t.row(vec!["1".into(), "voter".into()]);
        t.row(vec!["10".into(), "learner".into()]);
        let s = t.render();
        assert_eq!(s, "id  role\n--  -------\n 1  voter\n10  learner\n");
    }

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "-");
        assert_eq!(utc(1_795_478_400_000), "2026-11-24 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
    }
}
