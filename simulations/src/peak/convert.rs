//! A CSV of appointments → a version-2 trace (`ninety sim convert`), so users can replay
//! their own data.
//!
//! One row is one appointment: when it was booked, when it is (a date, or a date and a
//! time), and optionally who (pseudonymised with SHA-256 and a salt: the raw value is never
//! written), which specialty, hospital and mode, whether the patient came, when it was
//! cancelled, the patient's age, sex and language. Columns are found by name
//! ([`Columns`]); the conventional names are used when present. Each row becomes a `book`
//! at its booking time searching the appointment's clinic day (or the hour around a timed
//! appointment), then a `mark_no_show` a quarter of an hour after its slot starts
//! (`after_slot_ms`), or a `cancel_booking` at its cancellation time. Rows that cannot
//! make sense (booked after the appointment, unreadable times) are skipped and counted.
//!
//! Times: a time without an offset is a local time of `--tz`, the trace's clock; one with
//! an offset (`Z`, `+08:00`) is that instant, or with `--source-tz` that zone's local
//! clock reading, kept as the same reading on the trace's clock (a Brazilian clinic's
//! 09:00 replayed as 09:00 in the GBA). An appointment whose time is absent or exactly
//! 00:00:00 is a date only: its window is that day's clinic hours.

use super::generate::specialty_name;
use super::trace::{
    age_band_of, days_from_civil, local_midnight, tz_offset_minutes, Channel, Event, Header, Mode,
    Op, PatientAttrs, Ref, Trace, Urgency, LANGUAGES, MS_PER_DAY, TRACE_SPAN_MS_MAX,
};
use ninety_engine::generate::SplitMix64;
use ninety_engine::region::Specialty;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

const MS_PER_MINUTE: u64 = 60_000;
/// Most rows one conversion reads.
pub const ROWS_MAX: usize = 10_000_000;

/// Column names. `None`: the conventional name, when the CSV has it.
#[derive(Clone, Debug)]
pub struct Columns {
    /// When the appointment was booked (required; default `booked_at`).
    pub booked_at: String,
    /// When the appointment is (required; default `appointment_at`).
    pub appointment_at: String,
    /// Who (`patient_id`); else each row is its own patient.
    pub patient: Option<String>,
    /// The specialty (`specialty`); else `ConvertOptions::specialty`.
    pub specialty: Option<String>,
    /// Whether the patient did *not* come (`no_show`): yes/no, true/false, 1/0, y/n.
    pub no_show: Option<String>,
    /// When it was cancelled (`cancelled_at`); empty: not cancelled.
    pub cancelled_at: Option<String>,
    /// The hospital (`hospital_id`): an id of the region, or a name (each name is given a
    /// primary-tier hospital of the region, the same for the same name).
    pub hospital: Option<String>,
    /// Age in years (`age`).
    pub age: Option<String>,
    /// Sex (`sex`): M/F, male/female.
    pub sex: Option<String>,
    /// A language the doctor must speak (`language`): an engine code or its English name.
    pub language: Option<String>,
    /// In person or remote (`mode`).
    pub mode: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            booked_at: "booked_at".into(),
            appointment_at: "appointment_at".into(),
            patient: None,
            specialty: None,
            no_show: None,
            cancelled_at: None,
            hospital: None,
            age: None,
            sex: None,
            language: None,
            mode: None,
        }
    }
}

/// How to convert.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub columns: Columns,
    /// The trace's time zone: local times of the CSV are read on it.
    pub tz: String,
    /// The zone whose clock readings times with an offset are kept as (`None`: instants).
    pub source_tz: Option<String>,
    /// Specialty when there is no column or the cell is empty (engine name).
    pub specialty: String,
    /// `FROM=TO`: a CSV specialty value and the engine name it stands for.
    pub specialty_map: Vec<(String, String)>,
    /// Hospital when there is no column (0: the region's first primary-tier hospital, or 1).
    pub hospital: u32,
    /// The built-in region the ids refer to (written into the header).
    pub region: Option<String>,
    /// Clinic hours of a date-only appointment, minutes of the local day.
    pub clinic_hours: (u32, u32),
    /// The window around a timed appointment, minutes (half before, half after).
    pub window_minutes: u32,
    /// A no-show is recorded this long after its slot starts, minutes.
    pub no_show_after_minutes: u32,
    /// Only rows booked on or after / before the end of these local dates (`YYYY-MM-DD`).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Mixed into the patient pseudonyms (keep it secret for real data).
    pub patient_salt: String,
    /// Seeds the request ids.
    pub seed: u64,
    pub urgency: Urgency,
    pub scenario: String,
    pub description: Option<String>,
    pub source: Option<String>,
    pub licence: Option<String>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            columns: Columns::default(),
            tz: "+08:00".into(),
            source_tz: None,
            specialty: "general_practice".into(),
            specialty_map: Vec::new(),
            hospital: 0,
            region: Some("gba".into()),
            clinic_hours: (8 * 60, 17 * 60 + 30),
            window_minutes: 60,
            no_show_after_minutes: 15,
            from: None,
            to: None,
            patient_salt: String::new(),
            seed: 1,
            urgency: Urgency::P4,
            scenario: "converted".into(),
            description: None,
            source: None,
            licence: None,
        }
    }
}

/// What a conversion did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertReport {
    pub rows: u64,
    pub appointments: u64,
    pub no_shows: u64,
    pub cancellations: u64,
    pub events: u64,
    /// Days from the first booking to the last event.
    pub days: u32,
    /// Rows left out, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Cells ignored (an unknown sex or language, a bad age), by column.
    pub ignored: BTreeMap<String, u64>,
}

impl ConvertReport {
    /// One line for a terminal.
    pub fn line(&self) -> String {
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} rows: {} appointments ({} no-shows, {} cancellations) over {} days, {} events; \
             skipped: {}; cells ignored: {}",
            self.rows,
            self.appointments,
            self.no_shows,
            self.cancellations,
            self.days,
            self.events,
            if self.skipped.is_empty() {
                "none".into()
            } else {
                list(&self.skipped)
            },
            if self.ignored.is_empty() {
                "none".into()
            } else {
                list(&self.ignored)
            },
        )
    }
}

/// Splits CSV text (RFC 4180: quoted fields, `""` inside quotes, CRLF or LF, a leading
/// byte-order mark) into records of fields, each with its 1-based starting line.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let (mut field, mut record) = (String::new(), Vec::new());
    let (mut quoted, mut line, mut start) = (false, 1usize, 1usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    out.push((start, std::mem::take(&mut record)));
                }
                record.clear();
                line += 1;
                start = line;
            }
            (_, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
        }
        if out.len() > ROWS_MAX {
            return Err(format!("more than {ROWS_MAX} rows"));
        }
    }
    if quoted {
        return Err(format!("line {start}: a quoted field is not closed"));
    }
    record.push(field);
    if !(record.len() == 1 && record[0].is_empty()) {
        out.push((start, record));
    }
    Ok(out)
}

/// A timestamp as written: its local date and time, and its offset if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Days since 1970-01-01 of the written date.
    pub day: i64,
    /// Milliseconds after the written date's midnight.
    pub ms: u64,
    /// The written offset from UTC, minutes (`Z`: 0), if any.
    pub offset: Option<i32>,
    /// Whether a time of day was written and is not exactly 00:00:00.
    pub has_time: bool,
}

/// Parses `YYYY-MM-DD` (or `/`), optionally `[T ]HH:MM[:SS[.fff]]`, optionally `Z` or an
/// offset (`+08:00`, `-0300`).
pub fn parse_stamp(s: &str) -> Result<Stamp, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a date or time (YYYY-MM-DD[ HH:MM[:SS]][Z|+HH:MM])");
    let (date, rest) = s.split_at(s.len().min(10));
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let day = days_from_civil(num(y)?, num(m)?, num(d)?).ok_or_else(bad)?;
    let rest = rest.trim_start_matches(['T', ' ']);
    let split = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(split);
    let offset = match zone {
        "" => None,
        z => Some(tz_offset_minutes(z).map_err(|_| bad())?),
    };
    let mut ms = 0u64;
    if !time.is_empty() {
        let t: Vec<&str> = time.split(':').collect();
        if t.len() < 2 || t.len() > 3 {
            return Err(bad());
        }
        let h: u64 = t[0].parse().map_err(|_| bad())?;
        let mi: u64 = t[1].parse().map_err(|_| bad())?;
        let sec: f64 = t.get(2).map_or(Ok(0.0), |x| x.parse()).map_err(|_| bad())?;
        if h > 23 || mi > 59 || !(0.0..60.0).contains(&sec) {
            return Err(bad());
        }
        ms = (h * 60 + mi) * MS_PER_MINUTE + (sec * 1000.0) as u64;
    }
    Ok(Stamp {
        day,
        ms,
        offset,
        has_time: ms != 0,
    })
}

/// The time zones of a conversion.
#[derive(Clone, Copy, Debug)]
struct Zones {
    /// The trace's, minutes from UTC.
    tz: i32,
    /// Keep readings of this zone, minutes from UTC.
    source: Option<i32>,
}

impl Zones {
    /// The local clock reading (ms since the epoch as if UTC) on the trace's clock.
    fn local(&self, s: Stamp) -> i64 {
        let written = s.day * MS_PER_DAY as i64 + s.ms as i64;
        match (s.offset, self.source) {
            (None, _) => written,
            (Some(o), Some(src)) => written - i64::from(o) * 60_000 + i64::from(src) * 60_000,
            (Some(o), None) => written - i64::from(o) * 60_000 + i64::from(self.tz) * 60_000,
        }
    }

    /// The Unix ms of a local reading of the trace's clock.
    fn unix(&self, local: i64) -> Result<u64, String> {
        u64::try_from(local - i64::from(self.tz) * 60_000)
            .map_err(|_| "a time before 1970".to_string())
    }
}

/// The index of each column the conversion reads (`None`: not in the CSV).
struct Index {
    booked_at: usize,
    appointment_at: usize,
    optional: BTreeMap<&'static str, usize>,
}

fn index(header: &[String], c: &Columns) -> Result<Index, String> {
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let need = |name: &str, flag: &str| {
        find(name).ok_or_else(|| {
            format!(
                "no column {name:?} ({flag}); the CSV has: {}",
                header.join(", ")
            )
        })
    };
    let mut optional = BTreeMap::new();
    let wanted: [(&'static str, &Option<String>, &str); 9] = [
        ("patient", &c.patient, "patient_id"),
        ("specialty", &c.specialty, "specialty"),
        ("no_show", &c.no_show, "no_show"),
        ("cancelled_at", &c.cancelled_at, "cancelled_at"),
        ("hospital", &c.hospital, "hospital_id"),
        ("age", &c.age, "age"),
        ("sex", &c.sex, "sex"),
        ("language", &c.language, "language"),
        ("mode", &c.mode, "mode"),
    ];
    for (key, given, conventional) in wanted {
        let i = match given {
            Some(name) => Some(need(name, &format!("--col-{}", key.replace('_', "-")))?),
            None => find(conventional),
        };
        if let Some(i) = i {
            optional.insert(key, i);
        }
    }
    Ok(Index {
        booked_at: need(&c.booked_at, "--col-booked-at")?,
        appointment_at: need(&c.appointment_at, "--col-appointment-at")?,
        optional,
    })
}

/// The engine name of a CSV specialty value.
fn specialty(value: &str, opts: &ConvertOptions) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(opts.specialty.clone());
    }
    if let Some((_, to)) = opts.specialty_map.iter().find(|(from, _)| from == v) {
        return Ok(to.clone());
    }
    let norm = v.to_lowercase().replace([' ', '-', '/'], "_");
    let synonym = match norm.as_str() {
        "gp" | "general" | "family_medicine" | "primary_care" => "general_practice",
        "paediatrics" | "pediatric" => "pediatrics",
        "gynecology" | "gynaecology" | "obgyn" | "ob_gyn" => "obstetrics",
        "tcm" => "traditional_chinese_medicine",
        "orthopaedics" => "orthopedics",
        other => other,
    };
    Specialty::ALL
        .iter()
        .map(|s| specialty_name(*s))
        .find(|n| n == synonym)
        .ok_or_else(|| {
            format!(
                "specialty {v:?} is not an engine specialty (map it: --map-specialty {v:?}=NAME)"
            )
        })
}

fn yes(v: &str) -> Option<bool> {
    match v.trim().to_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" => Some(true),
        "no" | "n" | "false" | "f" | "0" | "" => Some(false),
        _ => None,
    }
}

fn sex(v: &str) -> Option<String> {
    match v.trim().to_lowercase().as_str() {
        "m" | "male" | "man" => Some("male".into()),
        "f" | "female" | "woman" => Some("female".into()),
        _ => None,
    }
}

fn language(v: &str) -> Option<String> {
    let v = v.trim().to_lowercase();
    let code = match v.as_str() {
        "mandarin" | "chinese" | "putonghua" => "zh",
        "cantonese" => "yue",
        "english" => "en",
        "portuguese" => "pt",
        "vietnamese" => "vi",
        "thai" => "th",
        "lao" => "lo",
        "khmer" => "km",
        "burmese" => "my",
        "malay" => "ms",
        "indonesian" => "id",
        other => other,
    };
    LANGUAGES.contains(&code).then(|| code.to_string())
}

fn mode(v: &str) -> Mode {
    match v.trim().to_lowercase().as_str() {
        "remote" | "online" | "video" | "telehealth" | "telemedicine" => Mode::Remote,
        "" | "in_person" | "in person" | "in-person" | "clinic" | "office" => Mode::InPerson,
        _ => Mode::Any,
    }
}

/// A 32-hex pseudonym of a patient value: SHA-256 of the salt and the value.
pub fn pseudonym(salt: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(value.trim().as_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hospitals the conversion can name: the region's, for names in the hospital column.
struct Hospitals {
    default: u32,
    /// Primary-tier hospital ids (all hospitals when none is primary).
    pool: Vec<u32>,
}

impl Hospitals {
    fn new(opts: &ConvertOptions) -> Hospitals {
        let region = opts
            .region
            .as_deref()
            .and_then(|r| super::preset_region(r, None));
        let mut pool: Vec<u32> = region.as_ref().map_or(Vec::new(), |r| {
            r.hospitals
                .iter()
                .filter(|h| h.tier == ninety_engine::region::Tier::Primary)
                .map(|h| h.id.0)
                .collect()
        });
        if pool.is_empty() {
            pool = region.map_or(Vec::new(), |r| r.hospitals.iter().map(|h| h.id.0).collect());
        }
        let default = match opts.hospital {
            0 => pool.first().copied().unwrap_or(1),
            h => h,
        };
        Hospitals { default, pool }
    }

    fn of(&self, v: &str) -> Result<u32, String> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(self.default);
        }
        if let Ok(id) = v.parse::<u32>() {
            return Ok(id);
        }
        if self.pool.is_empty() {
            return Err(format!(
                "hospital {v:?} is not an id, and no --region to name it in"
            ));
        }
        let k = super::send::key_of(v) % self.pool.len() as u64;
        Ok(self.pool[k as usize])
    }
}

/// One appointment, read.
struct Row {
    line: usize,
    booked: u64,
    /// The appointment's start when timed, else the window's start.
    slot: u64,
    timed: bool,
    cancelled: Option<u64>,
    no_show: bool,
    op: Op,
    attrs: PatientAttrs,
}

/// Reads the cells of one record (`None`: the row is skipped, with its reason counted).
struct Reader<'a> {
    ix: &'a Index,
    opts: &'a ConvertOptions,
    zones: Zones,
    hospitals: Hospitals,
    range: (Option<i64>, Option<i64>),
}

impl Reader<'_> {
    fn cell<'r>(&self, rec: &'r [String], key: &str) -> &'r str {
        self.ix
            .optional
            .get(key)
            .and_then(|&i| rec.get(i))
            .map_or("", |s| s.as_str())
    }

    /// The appointment's window and slot estimate (Unix ms), and whether it is timed.
    fn window(&self, at: Stamp, booked: u64) -> Result<((u64, u64), u64, bool), &'static str> {
        let z = self.zones;
        // A date only is the date as written, whatever offset came with it.
        let local = if at.has_time {
            z.local(at)
        } else {
            at.day * MS_PER_DAY as i64
        };
        let (s, e) = if at.has_time {
            let half = i64::from(self.opts.window_minutes) * 30_000;
            (local - half, local + half)
        } else {
            let midnight = local - local.rem_euclid(MS_PER_DAY as i64);
            let (a, b) = self.opts.clinic_hours;
            (
                midnight + i64::from(a) * 60_000,
                midnight + i64::from(b) * 60_000,
            )
        };
        let (s, e) = (
            z.unix(s).map_err(|_| "time before 1970")?,
            z.unix(e).map_err(|_| "time before 1970")?,
        );
        if e <= booked + MS_PER_MINUTE {
            return Err("booked after its appointment");
        }
        // Nothing before the booking can be booked.
        let s = s.max(booked + MS_PER_MINUTE);
        let slot = if at.has_time {
            z.unix(local).unwrap_or(s).max(s)
        } else {
            s
        };
        Ok(((s, e), slot, at.has_time))
    }

    fn read(
        &self,
        line: usize,
        rec: &[String],
        report: &mut ConvertReport,
    ) -> Result<Option<Row>, String> {
        let z = self.zones;
        let get = |i: usize| rec.get(i).map_or("", |s| s.as_str());
        let skip = |report: &mut ConvertReport, why: &str| {
            *report.skipped.entry(why.to_string()).or_default() += 1;
            Ok(None)
        };
        let (Ok(b), Ok(a)) = (
            parse_stamp(get(self.ix.booked_at)),
            parse_stamp(get(self.ix.appointment_at)),
        ) else {
            return skip(report, "unreadable booked or appointment time");
        };
        let booked_local = z.local(b);
        let booked_day = booked_local.div_euclid(MS_PER_DAY as i64);
        if self.range.0.is_some_and(|d| booked_day < d)
            || self.range.1.is_some_and(|d| booked_day > d)
        {
            return skip(report, "booked outside --from/--to");
        }
        let Ok(booked) = z.unix(booked_local) else {
            return skip(report, "time before 1970");
        };
        let (window, slot, timed) = match self.window(a, booked) {
            Ok(w) => w,
            Err(why) => return skip(report, why),
        };
        let cancelled = match self.cell(rec, "cancelled_at").trim() {
            "" => None,
            c => match parse_stamp(c).ok().and_then(|s| z.unix(z.local(s)).ok()) {
                Some(t) if t >= booked => Some(t),
                _ => {
                    *report.ignored.entry("cancelled_at".into()).or_default() += 1;
                    None
                }
            },
        };
        let no_show = match yes(self.cell(rec, "no_show")) {
            Some(v) => v,
            None => return skip(report, "unreadable no_show"),
        };
        let attrs = self.attrs(rec, report);
        let op = self.op(rec, line, window)?;
        Ok(Some(Row {
            line,
            booked,
            slot,
            timed,
            cancelled,
            no_show,
            op,
            attrs,
        }))
    }

    fn attrs(&self, rec: &[String], report: &mut ConvertReport) -> PatientAttrs {
        let mut ignored = |col: &str| *report.ignored.entry(col.to_string()).or_default() += 1;
        let mut a = PatientAttrs::default();
        let age = self.cell(rec, "age").trim();
        if !age.is_empty() {
            match age.parse::<u32>() {
                Ok(n) if n <= 130 => a.age_band = Some(age_band_of(n).to_string()),
                _ => ignored("age"),
            }
        }
        let s = self.cell(rec, "sex");
        if !s.trim().is_empty() {
            a.sex = sex(s);
            if a.sex.is_none() {
                ignored("sex");
            }
        }
        let l = self.cell(rec, "language");
        if !l.trim().is_empty() {
            a.language = language(l);
            if a.language.is_none() {
                ignored("language");
            }
        }
        a
    }

    fn op(&self, rec: &[String], line: usize, (s, e): (u64, u64)) -> Result<Op, String> {
        let patient_value = self.cell(rec, "patient");
        let patient = if patient_value.trim().is_empty() {
            pseudonym(&self.opts.patient_salt, &format!("row {line}"))
        } else {
            pseudonym(&self.opts.patient_salt, patient_value)
        };
        let specialty = specialty(self.cell(rec, "specialty"), self.opts)
            .map_err(|m| format!("line {line}: {m}"))?;
        let from_hospital = self
            .hospitals
            .of(self.cell(rec, "hospital"))
            .map_err(|m| format!("line {line}: {m}"))?;
        Ok(Op::Book {
            patient,
            from_hospital,
            specialty,
            urgency: self.opts.urgency,
            mode: mode(self.cell(rec, "mode")),
            window_start_ms: s,
            window_end_ms: e,
            max_travel_minutes: 0,
            channel: Channel::Public,
            referral: None,
        })
    }
}

/// The local day (days since the epoch) of a `YYYY-MM-DD` option.
fn day_option(name: &str, v: &Option<String>) -> Result<Option<i64>, String> {
    v.as_deref()
        .map(|d| {
            parse_stamp(d)
                .map(|s| s.day)
                .map_err(|e| format!("--{name}: {e}"))
        })
        .transpose()
}

/// Checks the options that do not depend on the CSV.
fn check_options(opts: &ConvertOptions) -> Result<Zones, String> {
    let tz = tz_offset_minutes(&opts.tz).map_err(|e| format!("--tz: {e}"))?;
    let source = opts
        .source_tz
        .as_deref()
        .map(tz_offset_minutes)
        .transpose()
        .map_err(|e| format!("--source-tz: {e}"))?;
    let (a, b) = opts.clinic_hours;
    if a >= b || b > 24 * 60 {
        return Err("--clinic-hours: expected HH:MM-HH:MM within one day".into());
    }
    if opts.window_minutes == 0 || opts.window_minutes > 31 * 24 * 60 {
        return Err("--window-minutes: 1 to 44640 (31 days)".into());
    }
    specialty(
        &opts.specialty,
        &ConvertOptions {
            specialty: String::new(),
            ..opts.clone()
        },
    )
    .map_err(|e| format!("--specialty: {e}"))?;
    if let Some(r) = &opts.region {
        super::preset_region(r, None).ok_or_else(|| {
            format!("--region {r:?}: not a built-in region (gba, yunnan, asean, national)")
        })?;
    }
    Ok(Zones { tz, source })
}

/// Converts CSV text into a trace.
pub fn convert(text: &str, opts: &ConvertOptions) -> Result<(Trace, ConvertReport), String> {
    let zones = check_options(opts)?;
    let records = parse_csv(text)?;
    let Some(((_, header), rows)) = records.split_first() else {
        return Err("the CSV is empty: expected a header line".into());
    };
    let ix = index(header, &opts.columns)?;
    let reader = Reader {
        ix: &ix,
        opts,
        zones,
        hospitals: Hospitals::new(opts),
        range: (day_option("from", &opts.from)?, day_option("to", &opts.to)?),
    };
    let mut report = ConvertReport::default();
    let mut read = Vec::new();
    for (line, rec) in rows {
        report.rows += 1;
        if let Some(r) = reader.read(*line, rec, &mut report)? {
            read.push(r);
        }
    }
    let trace = build(read, opts, &mut report)?;
    Ok((trace, report))
}

/// The events of the rows: each `book`, then its no-show or cancellation; sorted by time
/// (a row's own events in that order), numbered from 1.
fn build(
    rows: Vec<Row>,
    opts: &ConvertOptions,
    report: &mut ConvertReport,
) -> Result<Trace, String> {
    let start = rows.iter().map(|r| r.booked).min().unwrap_or(0) / MS_PER_MINUTE * MS_PER_MINUTE;
    // (at, row order, step, row index): the book is step 0.
    let mut plan: Vec<(u64, usize, u8, usize)> = Vec::new();
    let after = u64::from(opts.no_show_after_minutes) * MS_PER_MINUTE;
    for (i, r) in rows.iter().enumerate() {
        plan.push((r.booked, r.line, 0, i));
        if let Some(c) = r.cancelled {
            plan.push((c, r.line, 1, i));
        } else if r.no_show {
            plan.push((r.slot + after, r.line, 2, i));
        }
    }
    plan.sort();
    let mut book_id = vec![0u64; rows.len()];
    let mut ids = SplitMix64::new(opts.seed ^ 0x6373_7669_6d70_6f72);
    let mut events = Vec::with_capacity(plan.len());
    for (n, (at, _, step, i)) in plan.into_iter().enumerate() {
        let r = &rows[i];
        let id = n as u64 + 1;
        let hold = Ref::Event { event: book_id[i] };
        let op = match step {
            0 => {
                book_id[i] = id;
                r.op.clone()
            }
            1 => Op::CancelBooking {
                hold,
                reason: "patient-cancelled".into(),
            },
            _ => Op::MarkNoShow { hold },
        };
        let request_id = format!("{:016x}{:016x}", ids.next_u64(), ids.next_u64());
        let mut e = Event::new(id, at - start, request_id, op);
        e.after_slot_ms = match step {
            1 if r.timed => Some(r.cancelled.unwrap_or(at) as i64 - r.slot as i64),
            2 => Some(after as i64),
            _ => None,
        };
        if !r.attrs.is_empty() {
            e.patient_attrs = Some(r.attrs.clone());
        }
        report.cancellations += u64::from(step == 1);
        report.no_shows += u64::from(step == 2);
        events.push(e);
    }
    report.appointments = rows.len() as u64;
    report.events = events.len() as u64;
    let header = header(opts, start, events.last().map_or(0, |e| e.at_ms));
    report.days = header.days.unwrap_or(0);
    let trace = Trace { header, events };
    if let Some(e) = trace.events.iter().find(|e| e.at_ms > TRACE_SPAN_MS_MAX) {
        return Err(format!(
            "event {} is {} days after the first booking, beyond a trace's year: use --from/--to",
            e.id,
            e.at_ms / MS_PER_DAY
        ));
    }
    trace.check()?;
    Ok(trace)
}

fn header(opts: &ConvertOptions, start: u64, last_at_ms: u64) -> Header {
    let mut h = Header::new(&opts.scenario, 0, start);
    let offset = tz_offset_minutes(&opts.tz).unwrap_or(0);
    let day0 = local_midnight(start, offset);
    let end = start + last_at_ms;
    h.days = Some(((end - day0) / MS_PER_DAY + 1).min(u64::from(u32::MAX)) as u32);
    h.region = opts.region.clone();
    h.time_zone = Some(opts.tz.clone());
    h.description = opts.description.clone();
    h.source = opts.source.clone();
    h.licence = opts.licence.clone();
    h
}

/// Converts a CSV file and writes the trace to `out`.
pub fn convert_file(
    csv: &Path,
    out: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport, String> {
    let text = std::fs::read_to_string(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let (trace, report) = convert(&text, opts).map_err(|e| format!("{}: {e}", csv.display()))?;
    let f = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    trace
        .write(std::io::BufWriter::new(f))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(report)
}
