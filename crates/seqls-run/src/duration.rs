//! Wall-clock durations as users write them: `90s`, `12m`, `1h`, `1h30m`, `2.5h` (or plain seconds).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A wall-clock duration in seconds, written and read as `12m`, `1h30m`, `90s`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct WallClock(pub f64);

impl WallClock {
    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl std::str::FromStr for WallClock {
    type Err = String;

    /// Parses `<number><unit>` terms (units `h`, `m`, `s`; a bare number is seconds), e.g. `1h30m`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a duration: write e.g. 90s, 12m, 1h30m or 2.5h");
        let text_trim = text.trim();
        if text_trim.is_empty() {
            return Err(bad());
        }
        if let Ok(seconds) = text_trim.parse::<f64>() {
            return (seconds.is_finite() && seconds > 0.0)
                .then_some(WallClock(seconds))
                .ok_or_else(bad);
        }
        let mut total = 0.0;
        let mut number = String::new();
        for c in text_trim.chars() {
            match c {
                '0'..='9' | '.' => number.push(c),
                'h' | 'm' | 's' => {
                    let value: f64 = number.parse().map_err(|_| bad())?;
                    total += value
                        * match c {
                            'h' => 3600.0,
                            'm' => 60.0,
                            _ => 1.0,
                        };
                    number.clear();
                }
                _ => return Err(bad()),
            }
        }
        if !(number.is_empty() && total.is_finite() && total > 0.0) {
            return Err(bad());
        }
        Ok(WallClock(total))
    }
}

impl fmt::Display for WallClock {
    /// `1h30m`, `12m`, `90.5s`: whole hours and minutes where they divide, else seconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.fract() == 0.0 && s % 60.0 == 0.0 {
            let minutes = (s / 60.0) as u64;
            match (minutes / 60, minutes % 60) {
                (0, m) => write!(f, "{m}m"),
                (h, 0) => write!(f, "{h}h"),
                (h, m) => write!(f, "{h}h{m}m"),
            }
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for WallClock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for WallClock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(f64),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Seconds(s) => s.to_string().parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_as_written() {
        for (text, seconds, shown) in [
            ("12m", 720.0, "12m"),
            ("1h", 3600.0, "1h"),
            ("1h30m", 5400.0, "1h30m"),
            ("90s", 90.0, "90s"),
            ("2.5h", 9000.0, "2h30m"),
            ("45", 45.0, "45s"),
        ] {
            let d: WallClock = text.parse().unwrap();
            assert_eq!(d.seconds(), seconds, "{text}");
            assert_eq!(d.to_string(), shown);
        }
        for bad in ["", "12", "m", "12x", "-5m", "0s", "1h30", "inf"] {
            if bad == "12" {
                continue; // plain seconds are accepted
            }
            assert!(bad.parse::<WallClock>().is_err(), "{bad:?}");
        }
    }
}
