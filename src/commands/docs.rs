//! `completions` and `man`: documents generated from the clap definitions in `cli.rs`, so
//! they cannot drift from `--help`. Neither needs a configuration file or a cluster.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Outcome;

/// The name operators type; completions are registered for it.
const BIN: &str = "kmigrate";

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    // clap_complete panics when its writer fails; render into memory so that a closed pipe
    // stays an ordinary error.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
    write_all(out, &buf)?;
    Ok(Outcome::Success)
}

/// Writes one manual page covering the program and every command to `out`.
pub fn man(out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let buf = render_man().context("rendering the manual page")?;
    write_all(out, &buf)?;
    Ok(Outcome::Success)
}

/// clap_mangen renders one command per page and refers to `kmigrate-plan(1)` and so on for
/// the commands, pages that would have to be installed separately. One page is easier to
/// ship: the program's sections, then one section per command (its synopsis, description
/// and options as subsections), then exit status and version. A man page has only two
/// heading levels, hence the command's own headings are demoted from `.SH` to `.SS`.
fn render_man() -> std::io::Result<Vec<u8>> {
    // Taken before `build()`: the commands then list only their own options, not the global
    // ones repeated, which the program's OPTIONS section already documents.
    let unbuilt = Cli::command();
    let top = clap_mangen::Man::new(unbuilt.clone());
    // Each rendered piece starts with the same string definition (`Aq`, the apostrophe);
    // the page keeps the first one only.
    let mut page = Vec::new();
    top.render_title(&mut page)?;
    let mut rest = Vec::new();
    top.render_name_section(&mut rest)?;
    top.render_synopsis_section(&mut rest)?;
    top.render_description_section(&mut rest)?;
    top.render_options_section(&mut rest)?;
    page.extend(edit_lines(&rest, |_| None));
    for sub in unbuilt.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full_name = format!("{BIN} {}", sub.get_name());
        writeln!(page, ".SH \"{}\"", full_name.to_uppercase())?;
        let man = clap_mangen::Man::new(sub.clone().bin_name(&full_name));
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        // The synopsis above lists the command's own options only.
        writeln!(
            section,
            ".PP\nThe options of \\fB{BIN}\\fR above (OPTIONS) are accepted too, before or after \\fB{}\\fR.",
            sub.get_name()
        )?;
        man.render_description_section(&mut section)?;
        man.render_options_section(&mut section)?;
        page.extend(edit_lines(&section, |line| {
            line.strip_prefix(b".SH ")
                .map(|rest| [b".SS ".as_slice(), rest].concat())
        }));
    }
    // The program's after-help text is its exit codes; clap_mangen would head it "EXTRA".
    let mut tail = Vec::new();
    top.render_extra_section(&mut tail)?;
    top.render_version_section(&mut tail)?;
    page.extend(edit_lines(&tail, |line| {
        (line.trim_ascii_end() == b".SH EXTRA").then(|| b".SH \"EXIT STATUS\"\n".to_vec())
    }));
    Ok(page)
}

/// The lines of `roff` without the apostrophe preamble, each replaced by `edit`'s result
/// when it returns one. A line keeps its newline.
fn edit_lines(roff: &[u8], edit: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(roff.len());
    for line in roff.split_inclusive(|&b| b == b'\n') {
        if is_preamble(line) {
            continue;
        }
        match edit(line) {
            Some(new) => out.extend_from_slice(&new),
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// The two lines the roff crate puts before every piece it renders.
fn is_preamble(line: &[u8]) -> bool {
    let line = line.trim_ascii_end();
    line.starts_with(b".ie \\n(.g .ds Aq ") || line.starts_with(b".el .ds Aq ")
}

fn write_all(out: &mut dyn Write, bytes: &[u8]) -> anyhow::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        // `kmigrate man | head` closing the pipe early is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_lines_drops_the_preamble_and_edits() {
        let input = b".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.SH NAME\ntext\n";
        let out = edit_lines(input, |l| (l == b"text\n").then(|| b"TEXT\n".to_vec()));
        assert_eq!(out, b".SH NAME\nTEXT\n");
    }

    #[test]
    fn man_page_is_one_page_with_a_section_per_command() {
        let page = String::from_utf8(render_man().unwrap()).unwrap();
        let count = |prefix: &str| page.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count(".TH "), 1, "{page}");
        assert_eq!(count(".ie \\n(.g .ds Aq"), 1, "{page}");
        assert!(page.contains(".SH \"EXIT STATUS\"\nExit codes:"), "{page}");
        for cmd in ["PLAN", "RUN", "VERIFY", "COMPLETIONS", "MAN"] {
            assert!(page.contains(&format!(".SH \"KMIGRATE {cmd}\"")), "{cmd}");
        }
    }
}
