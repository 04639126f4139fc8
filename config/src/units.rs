//! Value types with units: durations (`30s`), byte sizes (`64KiB`), event
//! rates (`100/s`) and bandwidths (`1MiB/s`). Each parses from the text an
//! operator writes and prints back in the same notation.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::str::FromStr;
use std::time::Duration as StdDuration;

/// A duration written with a unit: `250ms`, `30s`, `5m`, `2h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

/// A size in bytes: `512`, `64KiB`, `1MiB`, `2GiB` (binary) or `10kB`, `5MB`, `1GB` (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A non-zero number of events per period: `100/s`, `600/m`, `10/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Events allowed per `per`.
    pub count: NonZeroU32,
    /// The period the count applies to.
    pub per: StdDuration,
}

/// A non-zero bandwidth: `64KiB/s`, `1MiB/s`, `10MB/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bandwidth {
    /// Bytes allowed per second.
    pub bytes_per_sec: NonZeroU64,
}

/// Why a unit value did not parse; the message completes "... is not X".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError(pub &'static str);

impl Duration {
    /// What a valid duration looks like, for error messages.
    pub const EXPECTED: &'static str = "a duration like 500ms, 30s, 5m, 2h or 7d";

    /// The standard library duration.
    pub fn get(self) -> StdDuration {
        self.0
    }

    /// Shorthand for a whole number of seconds.
    pub const fn secs(s: u64) -> Self {
        Self(StdDuration::from_secs(s))
    }

    /// Shorthand for a whole number of milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Self(StdDuration::from_millis(ms))
    }
}

impl ByteSize {
    /// What a valid size looks like, for error messages.
    pub const EXPECTED: &'static str = "a size like 512, 64KiB, 1MiB or 10MB";

    /// Shorthand for a number of kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }

    /// Shorthand for a number of mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size as bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl Rate {
    /// What a valid rate looks like, for error messages.
    pub const EXPECTED: &'static str = "a non-zero rate like 100/s, 600/m or 10/h";
}

impl Bandwidth {
    /// What a valid bandwidth looks like, for error messages.
    pub const EXPECTED: &'static str = "a non-zero bandwidth like 64KiB/s or 1MiB/s";
}

/// Splits `"30s"` into `(30, "s")`; the number may be followed by spaces.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    let value = text[..digits].parse().ok()?;
    Some((value, text[digits..].trim_start()))
}

fn period(unit: &str) -> Option<StdDuration> {
    Some(match unit {
        "ms" => StdDuration::from_millis(1),
        "s" | "sec" => StdDuration::from_secs(1),
        "m" | "min" => StdDuration::from_secs(60),
        "h" => StdDuration::from_secs(3600),
        "d" => StdDuration::from_secs(86_400),
        _ => return None,
    })
}

fn byte_multiplier(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    })
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = UnitError(Self::EXPECTED);
        let (value, unit) = split_number(text).ok_or_else(|| err.clone())?;
        let unit = period(unit).ok_or_else(|| err.clone())?;
        let value = u32::try_from(value).map_err(|_| err.clone())?;
        unit.checked_mul(value).map(Self).ok_or(err)
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = UnitError(Self::EXPECTED);
        let (value, unit) = split_number(text).ok_or_else(|| err.clone())?;
        let mult = byte_multiplier(unit).ok_or_else(|| err.clone())?;
        value.checked_mul(mult).map(Self).ok_or(err)
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = UnitError(Self::EXPECTED);
        let (count, per) = text.split_once('/').ok_or_else(|| err.clone())?;
        let count: u32 = count.trim().parse().map_err(|_| err.clone())?;
        let count = NonZeroU32::new(count).ok_or_else(|| err.clone())?;
        let per = period(per.trim()).filter(|p| *p >= StdDuration::from_secs(1));
        Ok(Self {
            count,
            per: per.ok_or(err)?,
        })
    }
}

impl FromStr for Bandwidth {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = UnitError(Self::EXPECTED);
        let size = text.trim().strip_suffix("/s").ok_or_else(|| err.clone())?;
        let ByteSize(bytes) = size.parse().map_err(|_| err.clone())?;
        let bytes_per_sec = NonZeroU64::new(bytes).ok_or(err)?;
        Ok(Self { bytes_per_sec })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            3600 => "h",
            _ => "d",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", ByteSize(self.bytes_per_sec.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        for (text, ms, back) in [
            ("500ms", 500, "500ms"),
            ("30s", 30_000, "30s"),
            ("90s", 90_000, "90s"),
            ("5m", 300_000, "5m"),
            ("2h", 7_200_000, "2h"),
            ("1d", 86_400_000, "1d"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.0.as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), back);
        }
        for bad in ["", "30", "s", "30x", "-5s", "1.5s", "99999999999s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes_parse_and_print() {
        for (text, bytes) in [
            ("512", 512),
            ("64KiB", 65_536),
            ("1MiB", 1 << 20),
            ("10kB", 10_000),
            ("2 GB", 2_000_000_000),
        ] {
            assert_eq!(text.parse::<ByteSize>().unwrap().0, bytes, "{text}");
        }
        assert_eq!(ByteSize::kib(64).to_string(), "64KiB");
        for bad in ["", "KiB", "12XB", "1.5MiB", "99999999999999999999GiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn rates_and_bandwidths() {
        let r: Rate = "100/s".parse().unwrap();
        assert_eq!((r.count.get(), r.per.as_secs()), (100, 1));
        assert_eq!("600/m".parse::<Rate>().unwrap().to_string(), "600/m");
        for bad in ["0/s", "100", "100/x", "/s", "5/ms"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
        }
        let b: Bandwidth = "64KiB/s".parse().unwrap();
        assert_eq!(b.bytes_per_sec.get(), 65_536);
        assert_eq!(b.to_string(), "64KiB/s");
        for bad in ["0/s", "64KiB", "fast/s"] {
            assert!(bad.parse::<Bandwidth>().is_err(), "{bad:?} parsed");
        }
    }
}
