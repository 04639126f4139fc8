//! `skerry passwd FILE USER`: add a user to the broker's users file, change
//! a password, or delete a user. The file logic (format, atomic rewrite,
//! permissions) lives in `skerry_broker::auth`; this is the command line.

use std::io::{self, BufRead};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use skerry_broker::auth::{self, Change};

/// Longest password an MQTT CONNECT can carry.
const MAX_PASSWORD_LEN: usize = 65_535;

const AFTER_HELP: &str = "\
The file holds one `name:hash` line per user (argon2id PHC strings); other
lines and comments are kept. It is created with mode 0600 if missing and
always replaced atomically, so a broker reading it never sees half a file.
Point `broker.users_file` at it; brokers read it at start and on reload.

Examples:
  skerry passwd /etc/skerry/users alice
  printf '%s\\n' \"$PW\" | skerry passwd --password-stdin /etc/skerry/users alice
  skerry passwd --delete /etc/skerry/users alice";

/// Arguments of `skerry passwd`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct PasswdArgs {
    /// The users file (`broker.users_file`).
    file: PathBuf,
    /// The username clients send in CONNECT: not empty, no ':' or whitespace.
    user: String,
    /// Remove USER from the file (an error if it is not there).
    #[arg(long, conflicts_with = "password_stdin")]
    delete: bool,
    /// Read the password from the first line of standard input instead of
    /// prompting twice on the terminal (for scripts).
    #[arg(long)]
    password_stdin: bool,
}

pub(crate) fn run(args: PasswdArgs) -> anyhow::Result<ExitCode> {
    let PasswdArgs {
        file: path,
        user,
        delete,
        password_stdin,
    } = args;
    let file = path.display();
    if delete {
        auth::delete_user(&path, &user)?;
        println!("{file}: deleted user {user}");
        return Ok(ExitCode::SUCCESS);
    }
    // Before asking for a password that could not be stored anyway.
    auth::check_username(&user).map_err(|reason| anyhow::anyhow!("invalid username {user:?}: {reason}"))?;
    let password = if password_stdin {
        read_password(io::stdin().lock())?
    } else {
        prompt_twice()?
    };
    check_password(&password)?;
    let hash = auth::hash_password(&password)?;
    match auth::set_user(&path, &user, &hash)? {
        Change::Added => println!("{file}: added user {user}"),
        Change::Replaced => println!("{file}: changed the password of {user}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn prompt_twice() -> anyhow::Result<Vec<u8>> {
    const NO_TTY: &str = "cannot prompt for the password (no terminal?); use --password-stdin";
    let first = rpassword::prompt_password("Password: ").context(NO_TTY)?;
    let second = rpassword::prompt_password("Repeat password: ").context(NO_TTY)?;
    if first != second {
        bail!("the passwords do not match; nothing changed");
    }
    Ok(first.into_bytes())
}

/// The first line of `input`, without its `\n` or `\r\n`; any bytes, since
/// an MQTT password is binary data.
fn read_password(input: impl BufRead) -> anyhow::Result<Vec<u8>> {
    let mut line = Vec::new();
    // One byte more than a password plus "\r\n" tells "too long" from "just fits".
    let limit = (MAX_PASSWORD_LEN + 3) as u64;
    input
        .take(limit)
        .read_until(b'\n', &mut line)
        .context("cannot read the password from standard input")?;
    if line.is_empty() {
        bail!("no password on standard input");
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(line)
}

fn check_password(password: &[u8]) -> anyhow::Result<()> {
    if password.is_empty() {
        bail!("refusing an empty password");
    }
    if password.len() > MAX_PASSWORD_LEN {
        bail!("the password is longer than {MAX_PASSWORD_LEN} bytes, more than MQTT can carry");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_line_only() {
        assert_eq!(read_password(&b"s3cret\nsecond line\n"[..]).expect("read"), b"s3cret");
        assert_eq!(read_password(&b"s3cret\r\n"[..]).expect("read"), b"s3cret");
        assert_eq!(read_password(&b"no newline"[..]).expect("read"), b"no newline");
        assert_eq!(read_password(&b"\xffbinary\n"[..]).expect("read"), b"\xffbinary");
    }

    #[test]
    fn refuses_missing_empty_and_oversized_passwords() {
        assert!(read_password(&b""[..]).is_err());
        let empty = read_password(&b"\n"[..]).expect("read");
        assert!(check_password(&empty).is_err());
        let long = vec![b'x'; MAX_PASSWORD_LEN + 10];
        let read = read_password(&long[..]).expect("read");
        assert!(check_password(&read).is_err());
        let just_fits = vec![b'x'; MAX_PASSWORD_LEN];
        assert!(check_password(&read_password(&just_fits[..]).expect("read")).is_ok());
    }
}
