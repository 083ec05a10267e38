//! The manual page (`shardgate man`, installed by the Debian package as
//! `shardgate.1`): clap_mangen renders the commands and flags from the
//! same definitions the parser uses, so it cannot drift from `--help`;
//! the sections clap knows nothing about (signals, files, environment)
//! are written here in roff. `--out-dir` writes a page per subcommand too
//! (`shardgate-run(1)` lists every tuning flag), as packages install them.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Sections after the generated ones.
const EXTRA_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting, close idle keep-alive connections, let in-flight requests
finish within \fIdrain_timeout\fR, then exit 0.
.TP
\fBSIGHUP\fR
Re-read the TLS certificates and keys; a broken file leaves the old ones
serving and the log says why.
.SH ENVIRONMENT
.TP
\fBSHARDGATE_LOG\fR
Log filter (\fBinfo\fR by default; \fBdebug\fR shows per-request failures). Logs go to stderr.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd for a \fBType=notify\fR unit: \fBREADY=1\fR is sent once every
shard serves, \fBSTOPPING=1\fR when the drain starts, and \fBWATCHDOG=1\fR at half
the watchdog interval while every shard is alive.
.SH FILES
.TP
\fI/etc/shardgate/shardgate.toml\fR
The configuration the packaged systemd unit runs (\fBshardgate check \-c\fR validates it).
.TP
\fI/usr/lib/systemd/system/shardgate.service\fR
The systemd unit; \fBsystemctl reload shardgate\fR sends SIGHUP.
.SH EXAMPLES
.nf
shardgate check \-c /etc/shardgate/shardgate.toml
shardgate run \-c /etc/shardgate/shardgate.toml
shardgate proxy \-\-listen 0.0.0.0:8080 \-\-upstream 10.0.0.5:9000,10.0.0.6:9000
.fi
"#;

/// Writes the page for `command` to stdout.
pub fn print(command: clap::Command) -> ExitCode {
    let mut page = Vec::new();
    if let Err(e) = render(command, &mut page) {
        eprintln!("shardgate man: {e}");
        return ExitCode::from(1);
    }
    match std::io::stdout().write_all(&page) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate man: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `shardgate.1` and one page per subcommand into `dir`.
pub fn write_pages(command: clap::Command, dir: &Path) -> ExitCode {
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command.clone(), dir)).and_then(|()| {
            // The top page again, with the sections written here.
            let mut page = Vec::new();
            render(command, &mut page)?;
            std::fs::write(dir.join("shardgate.1"), page)
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate man: {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

/// The roff text: clap_mangen's sections (NAME, SYNOPSIS, DESCRIPTION,
/// OPTIONS, SUBCOMMANDS), ours, then VERSION last as man pages put it.
pub fn render(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    out.write_all(EXTRA_SECTIONS.as_bytes())?;
    man.render_version_section(out)
}
