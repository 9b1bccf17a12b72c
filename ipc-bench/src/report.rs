//! Turning result lines into figures: best of the repetitions, their spread, the
//! ratio to the machine's limits; printed as text, Markdown or JSON, and drawn as
//! an SVG chart.

use crate::channel::Mechanism;
use crate::measure::{Plan, SMALL};
use lesson_kit::Failure;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// The repetitions of one figure. For a rate the best is the highest, for a time
/// the lowest; the spread says how far the worst is from the best (0.05 = 5 %).
#[derive(Debug, Clone, Default)]
pub struct Figure {
    values: Vec<f64>,
}

impl Figure {
    fn best_rate(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }

    fn best_time(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// For a rate: how much lower the worst repetition was, as a share of the best.
    fn spread(&self) -> f64 {
        let high = self.best_rate();
        let low = self.best_time();
        if high > 0.0 { (high - low) / high } else { 0.0 }
    }

    /// For a time: how much longer the worst repetition took, as a share of the best.
    fn spread_time(&self) -> f64 {
        let high = self.best_rate();
        let low = self.best_time();
        if low > 0.0 && low.is_finite() {
            (high - low) / low
        } else {
            0.0
        }
    }
}

/// One mechanism's figures.
struct Row {
    mechanism: Mechanism,
    /// Per size: GB/s of each repetition, and the bytes each moved.
    /// Whether the measuring side compared the checksum (all but vmsplice).
    throughput: Vec<(usize, Figure, u64, bool)>,
    /// Per repetition: median, 99th percentile (ns), round trips done.
    round_trip: Vec<(u64, u64, u64)>,
}

/// A Python figure: mechanism, throughput at one size (GB/s), median round trip
/// (ns).
pub struct PythonRow {
    pub mechanism: &'static str,
    pub size: usize,
    pub gbps: f64,
    pub median_ns: f64,
}

pub struct Report {
    reps: u32,
    cpus: Option<[usize; 2]>,
    command: String,
    pipe_capacity: Option<usize>,
    memcpy: Vec<(usize, Figure)>,
    syscall: Figure,
    rows: Vec<Row>,
    pub python: Vec<PythonRow>,
}

/// `tp 65536 0 123456 8388608` -> the numbers after the tag, if the tag matches.
fn numbers(line: &str, tag: &str) -> Option<Vec<u64>> {
    let mut words = line.split(' ');
    if words.next() != Some(tag) {
        return None;
    }
    words.map(|w| w.parse().ok()).collect()
}

fn bad_line(line: &str) -> Failure {
    Failure::new("results pipe", format!("unexpected line {line:?}"))
}

impl Report {
    pub fn new(plan: &Plan, cpus: Option<[usize; 2]>, args: &[String]) -> Report {
        let mut command = "cargo run --release -p ipc-bench".to_owned();
        if !args.is_empty() {
            command.push_str(" -- ");
            command.push_str(&args.join(" "));
        }
        Report {
            reps: plan.reps,
            cpus,
            command,
            pipe_capacity: None,
            memcpy: Vec::new(),
            syscall: Figure::default(),
            rows: Vec::new(),
            python: Vec::new(),
        }
    }

    /// Reads the limits job's lines: `mc size rep ns bytes`, `sc 0 rep ns calls`.
    pub fn add_limits(&mut self, lines: &[String]) -> Result<(), Failure> {
        for line in lines {
            if let Some([size, _, ns, bytes]) = numbers(line, "mc").as_deref() {
                let size = *size as usize;
                if self.memcpy.last().is_none_or(|(s, _)| *s != size) {
                    self.memcpy.push((size, Figure::default()));
                }
                let rate = *bytes as f64 / (*ns).max(1) as f64;
                self.memcpy.last_mut().expect("pushed").1.values.push(rate);
            } else if let Some([_, _, ns, calls]) = numbers(line, "sc").as_deref() {
                self.syscall
                    .values
                    .push(*ns as f64 / (*calls).max(1) as f64);
            } else {
                return Err(bad_line(line));
            }
        }
        Ok(())
    }

    /// Reads a mechanism's lines: `tp size rep ns bytes checked`, `rt size rep median p99
    /// n`.
    pub fn add_mechanism(
        &mut self,
        mechanism: Mechanism,
        lines: &[String],
        pipe_capacity: Option<usize>,
    ) -> Result<(), Failure> {
        self.pipe_capacity = self.pipe_capacity.or(pipe_capacity);
        let mut row = Row {
            mechanism,
            throughput: Vec::new(),
            round_trip: Vec::new(),
        };
        for line in lines {
            if let Some([size, _, ns, bytes, checked]) =
                numbers(line, "tp").as_deref()
            {
                let size = *size as usize;
                if row.throughput.last().is_none_or(|(s, ..)| *s != size) {
                    row.throughput.push((
                        size,
                        Figure::default(),
                        *bytes,
                        *checked == 1,
                    ));
                }
                let rate = *bytes as f64 / (*ns).max(1) as f64;
                row.throughput
                    .last_mut()
                    .expect("pushed")
                    .1
                    .values
                    .push(rate);
            } else if let Some([_, _, median, p99, n]) =
                numbers(line, "rt").as_deref()
            {
                row.round_trip.push((*median, *p99, *n));
            } else {
                return Err(bad_line(line));
            }
        }
        self.rows.push(row);
        Ok(())
    }

    fn memcpy_at(&self, size: usize) -> f64 {
        self.memcpy
            .iter()
            .find(|(s, _)| *s == size)
            .map_or(0.0, |(_, f)| f.best_rate())
    }

    /// The best round trip (lowest median) with its p99, the spread of the medians,
    /// and the round trips counted in each repetition.
    fn round_trip(row: &Row) -> Option<(f64, f64, f64, u64)> {
        let best = row.round_trip.iter().min_by_key(|(median, _, _)| *median)?;
        let medians = Figure {
            values: row.round_trip.iter().map(|(m, _, _)| *m as f64).collect(),
        };
        let rounds = row.round_trip.iter().map(|(_, _, n)| *n).min().unwrap_or(0);
        Some((best.0 as f64, best.1 as f64, medians.spread_time(), rounds))
    }

    fn header(&self) -> Vec<String> {
        let pinned = match self.cpus {
            None => "the two sides are not pinned (the scheduler places them)"
                .to_owned(),
            Some([a, b]) if a == b => format!(
                "both sides pinned to CPU {a} (the same CPU: every hand-over is a \
                 context switch)"
            ),
            Some([a, b]) => {
                format!("sides pinned to CPUs {a} and {b} (different CPUs)")
            }
        };
        let build = if cfg!(debug_assertions) {
            "DEBUG build: these numbers measure the compiler, use --release"
        } else {
            "release build"
        };
        let mut lines = vec![
            format!(
                "ipc-bench on {}, Linux {}, {build}",
                cpu_description(),
                kernel()
            ),
            format!("command: {}", self.command),
            pinned,
        ];
        if let Some(bytes) = self.pipe_capacity {
            lines.push(format!("pipes hold {bytes} bytes (F_SETPIPE_SZ)"));
        }
        lines.push(format!(
            "best of {} repetitions; spread: how much worse the worst one was",
            self.reps
        ));
        lines
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in self.header() {
            // A terminal (and the book's column) gets the command broken into lines.
            match line.strip_prefix("command: ") {
                Some(command) => {
                    let _ = writeln!(out, "command: {}", wrap_command(command));
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{:<20}{:>9}{:>10}{:>8}{:>11}",
            "throughput, one way", "size", "GB/s", "spread", "of memcpy"
        );
        for (size, figure) in &self.memcpy {
            let _ = writeln!(
                out,
                "{:<20}{:>9}{:>10.3}{:>8}{:>11}",
                "memcpy",
                size_text(*size),
                figure.best_rate(),
                percent(figure.spread()),
                "100%"
            );
        }
        for row in &self.rows {
            for (size, figure, ..) in &row.throughput {
                let rate = figure.best_rate();
                let _ = writeln!(
                    out,
                    "{:<20}{:>9}{:>10.3}{:>8}{:>11}",
                    row.mechanism.name(),
                    size_text(*size),
                    rate,
                    percent(figure.spread()),
                    percent(rate / self.memcpy_at(*size))
                );
            }
        }
        let syscall = self.syscall.best_time();
        let _ = writeln!(
            out,
            "\n{:<20}{:>11}{:>11}{:>8}{:>10}",
            format!("round trip, {SMALL} B"),
            "median",
            "p99",
            "spread",
            "syscalls"
        );
        let _ = writeln!(
            out,
            "{:<20}{:>11}{:>11}{:>8}{:>10}",
            "one system call",
            micros(syscall),
            "",
            percent(self.syscall.spread_time()),
            "1"
        );
        for row in &self.rows {
            if let Some((median, p99, spread, _)) = Self::round_trip(row) {
                let _ = writeln!(
                    out,
                    "{:<20}{:>11}{:>11}{:>8}{:>10.0}",
                    row.mechanism.name(),
                    micros(median),
                    micros(p99),
                    percent(spread),
                    median / syscall
                );
            }
        }
        if !self.python.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<20}{:>9}{:>10}{:>11}{:>11}{:>9}",
                "python3", "size", "GB/s", "of Rust", "round trip", "of Rust"
            );
            for py in &self.python {
                let (rust_rate, rust_trip) = self.rust_figures(py);
                let _ = writeln!(
                    out,
                    "{:<20}{:>9}{:>10.3}{:>11}{:>11}{:>9}",
                    py.mechanism,
                    size_text(py.size),
                    py.gbps,
                    times(py.gbps / rust_rate),
                    micros(py.median_ns),
                    times(py.median_ns / rust_trip)
                );
            }
        }
        out
    }

    /// The Rust figures a Python row compares with (0 if they were not measured).
    fn rust_figures(&self, py: &PythonRow) -> (f64, f64) {
        let row = self
            .rows
            .iter()
            .find(|r| r.mechanism.name() == py.mechanism);
        let rate = row
            .and_then(|r| r.throughput.iter().find(|(s, ..)| *s == py.size))
            .map_or(0.0, |(_, f, ..)| f.best_rate());
        let trip = row.and_then(Self::round_trip).map_or(0.0, |t| t.0);
        (rate, trip)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for line in self.header() {
            let _ = writeln!(out, "{line}  ");
        }
        let _ = writeln!(out);
        let mut sizes: Vec<usize> = self.memcpy.iter().map(|(s, _)| *s).collect();
        for row in &self.rows {
            for (size, ..) in &row.throughput {
                if !sizes.contains(size) {
                    sizes.push(*size);
                }
            }
        }
        sizes.sort_unstable();
        let _ = write!(out, "| throughput, GB/s (% of memcpy) |");
        for size in &sizes {
            let _ = write!(out, " {} |", size_text(*size));
        }
        let _ = write!(out, "\n|---|");
        for _ in &sizes {
            let _ = write!(out, "--:|");
        }
        let _ = write!(out, "\n| memcpy |");
        for size in &sizes {
            let _ = write!(out, " {:.2} |", self.memcpy_at(*size));
        }
        let _ = writeln!(out);
        for row in self.rows.iter().filter(|r| !r.throughput.is_empty()) {
            let _ = write!(out, "| {} |", row.mechanism.name());
            for size in &sizes {
                match row.throughput.iter().find(|(s, ..)| s == size) {
                    Some((_, figure, ..)) => {
                        let rate = figure.best_rate();
                        let share = percent(rate / self.memcpy_at(*size));
                        let _ = write!(out, " {rate:.2} ({share}) |");
                    }
                    None => {
                        let _ = write!(out, " |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        let syscall = self.syscall.best_time();
        let _ = writeln!(
            out,
            "\n| round trip, {SMALL} B | median | p99 | spread | in system calls |\n\
             |---|--:|--:|--:|--:|\n\
             | one system call | {} | | {} | 1 |",
            micros(syscall),
            percent(self.syscall.spread_time())
        );
        for row in &self.rows {
            if let Some((median, p99, spread, _)) = Self::round_trip(row) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.0} |",
                    row.mechanism.name(),
                    micros(median),
                    micros(p99),
                    percent(spread),
                    median / syscall
                );
            }
        }
        if !self.python.is_empty() {
            let _ = writeln!(
                out,
                "\n| python3 | size | GB/s | of Rust | round trip | of Rust |\n\
                 |---|--:|--:|--:|--:|--:|"
            );
            for py in &self.python {
                let (rust_rate, rust_trip) = self.rust_figures(py);
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.3} | {} | {} | {} |",
                    py.mechanism,
                    size_text(py.size),
                    py.gbps,
                    times(py.gbps / rust_rate),
                    micros(py.median_ns),
                    times(py.median_ns / rust_trip)
                );
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let mut out = String::from("{\n");
        let _ = writeln!(
            out,
            "  \"machine\": {{\"cpus\": {}, \"cpu\": {}, \"kernel\": {}, \"build\": {}}},",
            cpu_count(),
            quote(&cpu_model()),
            quote(&kernel()),
            quote(if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            })
        );
        let _ = writeln!(out, "  \"command\": {},", quote(&self.command));
        let pinned = self
            .cpus
            .map_or("null".to_owned(), |[a, b]| format!("[{a}, {b}]"));
        let _ = writeln!(out, "  \"pinned\": {pinned},");
        let capacity = self
            .pipe_capacity
            .map_or("null".to_owned(), |c| c.to_string());
        let _ = writeln!(out, "  \"pipe_capacity\": {capacity},");
        let _ = writeln!(out, "  \"reps\": {},", self.reps);
        let _ = writeln!(
            out,
            "  \"syscall_ns\": {:.1},",
            finite(self.syscall.best_time())
        );
        let mut items = Vec::new();
        for (size, figure) in &self.memcpy {
            items.push(format!(
                "    {{\"mechanism\": \"memcpy\", \"size\": {size}, \"gbps\": {:.4}, \
                 \"spread\": {:.3}}}",
                figure.best_rate(),
                figure.spread()
            ));
        }
        for row in &self.rows {
            for (size, figure, bytes, checked) in &row.throughput {
                let rate = figure.best_rate();
                items.push(format!(
                    "    {{\"mechanism\": \"{}\", \"size\": {size}, \"gbps\": {rate:.4}, \
                     \"spread\": {:.3}, \"of_memcpy\": {:.4}, \"bytes\": {bytes}, \
                     \"checked\": {checked}}}",
                    row.mechanism.name(),
                    figure.spread(),
                    finite(rate / self.memcpy_at(*size))
                ));
            }
        }
        let _ = writeln!(out, "  \"throughput\": [\n{}\n  ],", items.join(",\n"));
        let syscall = self.syscall.best_time();
        let mut items = Vec::new();
        for row in &self.rows {
            if let Some((median, p99, spread, rounds)) = Self::round_trip(row) {
                items.push(format!(
                    "    {{\"mechanism\": \"{}\", \"size\": {SMALL}, \"median_ns\": \
                     {median:.0}, \"p99_ns\": {p99:.0}, \"spread\": {spread:.3}, \
                     \"syscalls\": {:.1}, \"rounds\": {rounds}}}",
                    row.mechanism.name(),
                    finite(median / syscall)
                ));
            }
        }
        let _ = writeln!(out, "  \"round_trip\": [\n{}\n  ],", items.join(",\n"));
        let items: Vec<String> = self
            .python
            .iter()
            .map(|py| {
                format!(
                    "    {{\"mechanism\": \"{}\", \"size\": {}, \"gbps\": {:.4}, \
                     \"median_ns\": {:.0}}}",
                    py.mechanism,
                    py.size,
                    finite(py.gbps),
                    finite(py.median_ns)
                )
            })
            .collect();
        let _ = writeln!(out, "  \"python\": [\n{}\n  ]\n}}", items.join(",\n"));
        out
    }

    /// Throughput against message size, both on log scales: one line per mechanism,
    /// memcpy dashed on top (the ceiling).
    pub fn svg(&self) -> String {
        const W: f64 = 760.0;
        const H: f64 = 440.0;
        const LEFT: f64 = 60.0;
        const RIGHT: f64 = 170.0;
        const TOP: f64 = 40.0;
        const BOTTOM: f64 = 50.0;
        let mut lines: Vec<(&str, Vec<(usize, f64)>)> = vec![(
            "memcpy",
            self.memcpy
                .iter()
                .map(|(s, f)| (*s, f.best_rate()))
                .collect(),
        )];
        for row in &self.rows {
            let points: Vec<(usize, f64)> = row
                .throughput
                .iter()
                .map(|(s, f, ..)| (*s, f.best_rate()))
                .collect();
            if !points.is_empty() {
                lines.push((row.mechanism.name(), points));
            }
        }
        let all = lines.iter().flat_map(|(_, p)| p.iter());
        let (mut min_size, mut max_size, mut low, mut high) =
            (usize::MAX, 1, f64::MAX, 0.0f64);
        for &(size, rate) in all.clone() {
            min_size = min_size.min(size);
            max_size = max_size.max(size);
            if rate > 0.0 {
                low = low.min(rate);
                high = high.max(rate);
            }
        }
        let (x0, x1) = (
            (min_size.max(1) as f64).log2(),
            (max_size.max(2) as f64).log2(),
        );
        let (x1, _) = if x1 <= x0 { (x0 + 1.0, ()) } else { (x1, ()) };
        let y0 = if low == f64::MAX {
            -2.0
        } else {
            low.log10().floor()
        };
        let y1 = if high > 0.0 {
            high.log10().ceil().max(y0 + 1.0)
        } else {
            y0 + 1.0
        };
        let x = |size: usize| {
            LEFT + ((size as f64).log2() - x0) / (x1 - x0) * (W - LEFT - RIGHT)
        };
        let y = |rate: f64| {
            H - BOTTOM - (rate.log10() - y0) / (y1 - y0) * (H - TOP - BOTTOM)
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{LEFT}\" y=\"16\">Throughput (GB/s, log scale) against \
             message size</text>\n\
             <text x=\"{LEFT}\" y=\"28\" font-size=\"9\">{}</text>",
            escape(&self.command)
        );
        let mut decade = y0;
        while decade <= y1 {
            let yy = y(10f64.powf(decade));
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" \
                 stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                yy + 4.0,
                10f64.powf(decade)
            );
            decade += 1.0;
        }
        let mut sizes: Vec<usize> = lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(s, _)| *s))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x(size),
                H - BOTTOM + 18.0,
                size_text(size)
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">message size</text>",
            (LEFT + W - RIGHT) / 2.0,
            H - 12.0
        );
        const COLOURS: [&str; 12] = [
            "#000", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79",
        ];
        for (i, (name, points)) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let dash = if i == 0 {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let path: Vec<String> = points
                .iter()
                .filter(|(_, rate)| *rate > 0.0)
                .map(|&(size, rate)| format!("{:.1},{:.1}", x(size), y(rate)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} \
                 points=\"{}\"/>",
                path.join(" ")
            );
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let _ = writeln!(
                out,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" \
                 stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" \
                 y=\"{:.1}\">{name}</text>",
                W - RIGHT + 10.0,
                W - RIGHT + 34.0,
                W - RIGHT + 40.0,
                ly + 4.0
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

/// `64 B`, `4 KiB`, `1 MiB`, `1000 B`.
pub fn size_text(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// `12%`, `0.35%`, `0.0042%`: two significant digits below 10 %.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if !p.is_finite() {
        "-".to_owned()
    } else if p >= 10.0 || p == 0.0 {
        format!("{p:.0}%")
    } else {
        let digits = (1.0 - p.log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{p:.digits$}%")
    }
}

/// `12.3 µs` from nanoseconds.
fn micros(ns: f64) -> String {
    if ns.is_finite() {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        "-".to_owned()
    }
}

/// `3.2x`.
fn times(ratio: f64) -> String {
    if ratio.is_finite() && ratio > 0.0 {
        format!("{ratio:.1}x")
    } else {
        "-".to_owned()
    }
}

fn finite(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// CPUs this process may run on.
fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `Intel(R) Xeon(R) ...` from /proc/cpuinfo, if it says.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn cpu_description() -> String {
    format!("{} CPUs ({})", cpu_count(), cpu_model())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A long command line, broken as a shell would accept it: ` \` at the end of each
/// line but the last, so a table header stays within the book's column.
fn wrap_command(command: &str) -> String {
    let mut lines = vec![String::new()];
    for word in command.split(' ') {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + word.len() > 66 {
            lines.push(format!("    {word}"));
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join(" \\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan that only the report reads: its sizes and repetitions.
    pub(super) fn plan(sizes: &[usize], reps: u32) -> Plan {
        Plan {
            sizes: sizes.to_vec(),
            reps,
            bytes: 1,
            max_messages: 1,
            rounds: 1,
            syscalls: 1,
        }
    }

    #[test]
    fn sizes_are_written_in_the_largest_whole_unit() {
        assert_eq!(size_text(0), "0 B");
        assert_eq!(size_text(64), "64 B");
        assert_eq!(size_text(1000), "1000 B");
        assert_eq!(size_text(1024), "1 KiB");
        assert_eq!(size_text(1536), "1536 B");
        assert_eq!(size_text(65536), "64 KiB");
        assert_eq!(size_text(1 << 20), "1 MiB");
        assert_eq!(size_text(3 << 19), "1536 KiB");
    }

    #[test]
    fn percentages_keep_two_significant_digits_when_small() {
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.1), "10%");
        assert_eq!(percent(0.05), "5.0%");
        assert_eq!(percent(0.0123), "1.2%");
        assert_eq!(percent(0.000_42), "0.042%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(f64::INFINITY), "-");
    }

    #[test]
    fn a_figure_keeps_the_best_and_the_spread() {
        let figure = Figure {
            values: vec![2.0, 4.0, 3.0],
        };
        assert_eq!(figure.best_rate(), 4.0);
        assert_eq!(figure.best_time(), 2.0);
        assert_eq!(figure.spread(), 0.5);
        assert_eq!(figure.spread_time(), 1.0);
        assert_eq!(Figure::default().spread(), 0.0);
        assert_eq!(Figure::default().spread_time(), 0.0);
        // A time of 0 (no round trip counted) has no spread to speak of.
        let zero = Figure {
            values: vec![0.0, 2.0],
        };
        assert_eq!(zero.spread_time(), 0.0);
    }

    #[test]
    fn result_lines_become_figures() {
        let plan = plan(&[64], 2);
        let mut report = Report::new(&plan, None, &[]);
        let lines =
            |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
        report
            .add_limits(&lines("mc 64 0 100 400\nmc 64 1 100 200\nsc 0 0 1000 10"))
            .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(report.memcpy_at(64), 4.0);
        assert_eq!(report.syscall.best_time(), 100.0);
        report
            .add_mechanism(
                Mechanism::Pipe,
                &lines("tp 64 0 200 400 1\ntp 64 1 100 400 1\nrt 64 0 900 2000 5\nrt 64 1 800 3000 4"),
                Some(65536),
            )
            .unwrap_or_else(|f| panic!("{f}"));
        let row = &report.rows[0];
        assert_eq!(row.throughput[0].1.best_rate(), 4.0);
        assert_eq!(row.throughput[0].2, 400);
        assert_eq!(Report::round_trip(row), Some((800.0, 3000.0, 0.125, 4)));
        let text = report.text();
        let words =
            |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown: Vec<String> = text.lines().map(words).collect();
        assert!(
            shown.contains(&"pipe 64 B 4.000 50% 100%".to_owned()),
            "{text}"
        );
        assert!(
            shown.contains(&"one system call 0.10 µs 0% 1".to_owned()),
            "{text}"
        );
        assert!(
            shown.contains(&"pipe 0.80 µs 3.00 µs 12% 8".to_owned()),
            "{text}"
        );
        assert!(text.contains("pipes hold 65536 bytes"), "{text}");
        let refused = |outcome: Result<(), Failure>| match outcome {
            Ok(()) => panic!("a bad line was taken"),
            Err(failure) => failure.to_string(),
        };
        assert_eq!(
            refused(report.add_limits(&lines("zz 1 2 3"))),
            "results pipe: unexpected line \"zz 1 2 3\""
        );
        assert_eq!(
            refused(report.add_mechanism(Mechanism::Tcp, &lines("tp 1 x"), None)),
            "results pipe: unexpected line \"tp 1 x\""
        );
    }

    #[test]
    fn json_never_holds_an_infinity() {
        let plan = plan(&[64], 1);
        let mut report = Report::new(&plan, Some([0, 1]), &["--json".to_owned()]);
        report.python.push(PythonRow {
            mechanism: "pipe",
            size: 64,
            gbps: 0.5,
            median_ns: f64::INFINITY, // no round trip came back
        });
        let json = report.json();
        assert!(!json.contains("inf") && !json.contains("NaN"), "{json}");
        assert!(json.contains("\"median_ns\": 0}"), "{json}");
        assert!(json.contains("\"gbps\": 0.5000"), "{json}");
        assert!(json.contains("\"pinned\": [0, 1],"), "{json}");
        assert!(json.contains("\"syscall_ns\": 0.0,"), "{json}");
        assert!(
            json.contains(
                "\"command\": \"cargo run --release -p ipc-bench -- --json\""
            ),
            "{json}"
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        // Control characters (below a space) are escaped; a space is not.
        assert_eq!(quote("a b\u{1f}"), "\"a b\\u001f\"");
        assert_eq!(escape("<a & b>"), "&lt;a &amp; b&gt;");
    }
}

#[cfg(test)]
mod whole_report {
    use super::tests::plan;
    use super::*;

    /// A report of known figures: memcpy at two sizes, one system call, a pipe with
    /// two repetitions of everything, vmsplice (one way only), two Python rows.
    pub(super) fn known(cpus: Option<[usize; 2]>) -> Report {
        let plan = plan(&[64, 1024], 2);
        let args: Vec<String> = ["--only", "pipe,vmsplice", "--sizes", "64,1K"]
            .map(str::to_owned)
            .to_vec();
        let mut report = Report::new(&plan, cpus, &args);
        let lines =
            |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
        report
            .add_limits(&lines(
                "mc 64 0 100 400\nmc 64 1 100 200\nmc 1024 0 100 1000\n\
                 sc 0 0 1000 10\nsc 0 1 1200 10",
            ))
            .unwrap_or_else(|f| panic!("{f}"));
        report
            .add_mechanism(
                Mechanism::Pipe,
                &lines(
                    "tp 64 0 200 400 1\ntp 64 1 100 400 1\ntp 1024 0 1000 1000 1\n\
                     rt 64 0 900 2000 5\nrt 64 1 800 3000 4",
                ),
                Some(65536),
            )
            .unwrap_or_else(|f| panic!("{f}"));
        report
            .add_mechanism(Mechanism::Vmsplice, &lines("tp 64 0 50 400 0"), None)
            .unwrap_or_else(|f| panic!("{f}"));
        report.python.push(PythonRow {
            mechanism: "pipe",
            size: 64,
            gbps: 2.0,
            median_ns: 4000.0,
        });
        report.python.push(PythonRow {
            mechanism: "socketpair",
            size: 64,
            gbps: 0.25,
            median_ns: 5000.0,
        });
        report
    }

    /// The report's lines after its first (which names this machine).
    fn body(text: &str) -> String {
        text.split_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn the_text_report_shows_every_figure_in_its_column() {
        let text = known(Some([0, 1])).text();
        assert_eq!(
            body(&text),
            "\
command: cargo run --release -p ipc-bench -- --only pipe,vmsplice --sizes \\
    64,1K
sides pinned to CPUs 0 and 1 (different CPUs)
pipes hold 65536 bytes (F_SETPIPE_SZ)
best of 2 repetitions; spread: how much worse the worst one was

throughput, one way      size      GB/s  spread  of memcpy
memcpy                   64 B     4.000     50%       100%
memcpy                  1 KiB    10.000      0%       100%
pipe                     64 B     4.000     50%       100%
pipe                    1 KiB     1.000      0%        10%
vmsplice                 64 B     8.000      0%       200%

round trip, 64 B         median        p99  spread  syscalls
one system call         0.10 µs                20%         1
pipe                    0.80 µs    3.00 µs     12%         8

python3                  size      GB/s    of Rust round trip  of Rust
pipe                     64 B     2.000       0.5x    4.00 µs     5.0x
socketpair               64 B     0.250          -    5.00 µs        -
"
        );
    }

    #[test]
    fn the_markdown_report_has_the_same_figures_in_tables() {
        let text = known(Some([0, 1])).markdown();
        assert_eq!(
            body(&text),
            "\
command: cargo run --release -p ipc-bench -- --only pipe,vmsplice --sizes 64,1K  
sides pinned to CPUs 0 and 1 (different CPUs)  
pipes hold 65536 bytes (F_SETPIPE_SZ)  
best of 2 repetitions; spread: how much worse the worst one was  

| throughput, GB/s (% of memcpy) | 64 B | 1 KiB |
|---|--:|--:|
| memcpy | 4.00 | 10.00 |
| pipe | 4.00 (100%) | 1.00 (10%) |
| vmsplice | 8.00 (200%) | |

| round trip, 64 B | median | p99 | spread | in system calls |
|---|--:|--:|--:|--:|
| one system call | 0.10 µs | | 20% | 1 |
| pipe | 0.80 µs | 3.00 µs | 12% | 8 |

| python3 | size | GB/s | of Rust | round trip | of Rust |
|---|--:|--:|--:|--:|--:|
| pipe | 64 B | 2.000 | 0.5x | 4.00 µs | 5.0x |
| socketpair | 64 B | 0.250 | - | 5.00 µs | - |
"
        );
    }

    #[test]
    fn the_json_report_has_the_same_figures_as_numbers() {
        let json = known(Some([0, 1])).json();
        assert_eq!(
            body(&json),
            r#"  "machine": {"cpus": CPUS, "cpu": CPU, "kernel": KERNEL, "build": BUILD},
  "command": "cargo run --release -p ipc-bench -- --only pipe,vmsplice --sizes 64,1K",
  "pinned": [0, 1],
  "pipe_capacity": 65536,
  "reps": 2,
  "syscall_ns": 100.0,
  "throughput": [
    {"mechanism": "memcpy", "size": 64, "gbps": 4.0000, "spread": 0.500},
    {"mechanism": "memcpy", "size": 1024, "gbps": 10.0000, "spread": 0.000},
    {"mechanism": "pipe", "size": 64, "gbps": 4.0000, "spread": 0.500, "of_memcpy": 1.0000, "bytes": 400, "checked": true},
    {"mechanism": "pipe", "size": 1024, "gbps": 1.0000, "spread": 0.000, "of_memcpy": 0.1000, "bytes": 1000, "checked": true},
    {"mechanism": "vmsplice", "size": 64, "gbps": 8.0000, "spread": 0.000, "of_memcpy": 2.0000, "bytes": 400, "checked": false}
  ],
  "round_trip": [
    {"mechanism": "pipe", "size": 64, "median_ns": 800, "p99_ns": 3000, "spread": 0.125, "syscalls": 8.0, "rounds": 4}
  ],
  "python": [
    {"mechanism": "pipe", "size": 64, "gbps": 2.0000, "median_ns": 4000},
    {"mechanism": "socketpair", "size": 64, "gbps": 0.2500, "median_ns": 5000}
  ]
}
"#
            .replace("CPUS", &cpu_count().to_string())
            .replace("CPU", &quote(&cpu_model()))
            .replace("KERNEL", &quote(&kernel()))
            .replace(
                "BUILD",
                if cfg!(debug_assertions) {
                    "\"debug\""
                } else {
                    "\"release\""
                }
            )
        );
        assert!(json.starts_with("{\n"), "{json}");
    }

    #[test]
    fn the_header_names_the_machine_the_pinning_and_the_build() {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("model name"))?;
                Some(line.split_once(':')?.1.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .expect("osrelease");
        let build = if cfg!(debug_assertions) {
            "DEBUG build: these numbers measure the compiler, use --release"
        } else {
            "release build"
        };
        let text = known(None).text();
        assert_eq!(
            text.lines().next(),
            Some(
                format!(
                    "ipc-bench on {cpus} CPUs ({model}), Linux {}, {build}",
                    release.trim()
                )
                .as_str()
            )
        );
        assert!(
            text.contains(
                "\nthe two sides are not pinned (the scheduler places them)\n"
            ),
            "{text}"
        );
        let same = known(Some([1, 1])).text();
        assert!(
            same.contains(
                "\nboth sides pinned to CPU 1 (the same CPU: every hand-over is a \
                 context switch)\n"
            ),
            "{same}"
        );
        let json = known(None).json();
        assert!(json.contains("\n  \"pinned\": null,\n"), "{json}");
        // No mechanism with a pipe: no capacity to report.
        let plan = plan(&[64], 3);
        let bare = Report::new(&plan, None, &[]);
        assert!(!bare.text().contains("pipes hold"), "{}", bare.text());
        assert!(
            bare.text()
                .contains("\ncommand: cargo run --release -p ipc-bench\n")
        );
        assert!(bare.json().contains("\n  \"pipe_capacity\": null,\n"));
        assert!(bare.text().contains("\nbest of 3 repetitions;"));
    }

    #[test]
    fn a_long_command_is_broken_into_lines_a_shell_takes() {
        assert_eq!(wrap_command("a b"), "a b");
        let words = ["x".repeat(30), "y".repeat(30), "z".repeat(5), "w".repeat(7)];
        // The line so far (61 characters) and the next word may make 66 together
        // (the space between is not counted): the z word fits, the w word does not.
        assert_eq!(
            wrap_command(&words.join(" ")),
            format!(
                "{} {} {} \\\n    {}",
                words[0], words[1], words[2], words[3]
            )
        );
        let long = ["v".repeat(66), "u".to_owned()].join(" ");
        assert_eq!(wrap_command(&long), format!("{} \\\n    u", "v".repeat(66)));
    }

    #[test]
    fn ratios_and_times_have_their_units_or_a_dash() {
        assert_eq!(micros(1234.0), "1.23 µs");
        assert_eq!(micros(f64::INFINITY), "-");
        assert_eq!(times(3.21), "3.2x");
        assert_eq!(times(0.0), "-");
        assert_eq!(times(f64::NAN), "-");
        assert_eq!(times(f64::INFINITY), "-");
        assert_eq!(finite(2.5), 2.5);
        assert_eq!(finite(f64::NAN), 0.0);
        assert_eq!(percent(0.099), "9.9%");
        assert_eq!(percent(0.000_000_1), "0.000010%");
    }
}
