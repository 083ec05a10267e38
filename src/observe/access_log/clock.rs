//! Wall-clock time for access log lines: RFC 3339 (UTC, milliseconds) for
//! JSON and nginx's `$time_local` shape (`10/Oct/2000:13:55:36 +0000`,
//! always UTC) for the combined format. Written with a few integer
//! divisions (no time zone database, no allocation).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, as milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallTime(pub u64);

impl WallTime {
    /// The wall-clock time `ago` before now (a request's start, from its
    /// total duration).
    pub fn before_now(ago: Duration) -> WallTime {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        WallTime(now.saturating_sub(ago).as_millis() as u64)
    }

    /// `2026-12-03T18:04:05.123Z`. The part up to the seconds is kept
    /// per thread for the second it was made for: lines of one second
    /// (thousands, under load) pay for the calendar once.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        thread_local! {
            static LAST_SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
        }
        let secs = self.0 / 1000;
        let (cached, mut prefix) = LAST_SECOND.get();
        if cached != secs {
            let mut text = Vec::with_capacity(20);
            self.write_rfc3339_uncached(&mut text);
            prefix.copy_from_slice(&text[..20]);
            LAST_SECOND.set((secs, prefix));
        }
        out.extend_from_slice(&prefix);
        put(out, self.0 % 1000, 3);
        out.push(b'Z');
    }

    /// `write_rfc3339` from the calendar every time.
    fn write_rfc3339_uncached(self, out: &mut Vec<u8>) {
        let c = Civil::of(self.0 / 1000);
        put(out, c.year, 4);
        out.push(b'-');
        put(out, c.month, 2);
        out.push(b'-');
        put(out, c.day, 2);
        out.push(b'T');
        put(out, c.hour, 2);
        out.push(b':');
        put(out, c.minute, 2);
        out.push(b':');
        put(out, c.second, 2);
        out.push(b'.');
        put(out, self.0 % 1000, 3);
        out.push(b'Z');
    }

    /// `03/Dec/2026:18:04:05 +0000`
    pub fn write_common_log(self, out: &mut Vec<u8>) {
        const MONTHS: [&[u8]; 12] =
            [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
        let c = Civil::of(self.0 / 1000);
        put(out, c.day, 2);
        out.push(b'/');
        out.extend_from_slice(MONTHS[(c.month - 1) as usize]);
        out.push(b'/');
        put(out, c.year, 4);
        out.push(b':');
        put(out, c.hour, 2);
        out.push(b':');
        put(out, c.minute, 2);
        out.push(b':');
        put(out, c.second, 2);
        out.extend_from_slice(b" +0000");
    }
}

/// `n` in decimal, zero-padded to `width` digits.
fn put(out: &mut Vec<u8>, n: u64, width: u32) {
    let mut div = 10u64.pow(width - 1);
    while div > 0 {
        out.push(b'0' + (n / div % 10) as u8);
        div /= 10;
    }
}

struct Civil {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Civil {
    /// UTC calendar fields of `secs` since the epoch (Howard Hinnant's
    /// `civil_from_days`, for dates from 1970 on).
    fn of(secs: u64) -> Civil {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        Civil { year, month, day, hour: rem / 3600, minute: rem % 3600 / 60, second: rem % 60 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        // (ms since epoch, RFC 3339, common log)
        const CASES: &[(u64, &str, &str)] = &[
            (0, "1970-01-01T00:00:00.000Z", "01/Jan/1970:00:00:00 +0000"),
            (971_211_336_007, "2000-10-10T20:55:36.007Z", "10/Oct/2000:20:55:36 +0000"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z", "29/Feb/2000:00:00:00 +0000"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z", "31/Dec/2026:23:59:59 +0000"),
            // The same second again (the cached part), other milliseconds.
            (1_798_761_599_004, "2026-12-31T23:59:59.004Z", "31/Dec/2026:23:59:59 +0000"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z", "01/Mar/2100:00:00:00 +0000"),
        ];
        for &(ms, rfc, clf) in CASES {
            let mut out = Vec::new();
            WallTime(ms).write_rfc3339(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), rfc);
            let mut out = Vec::new();
            WallTime(ms).write_common_log(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), clf);
        }
    }

    #[test]
    fn before_now_is_in_the_past() {
        let now = WallTime::before_now(Duration::ZERO).0;
        let then = WallTime::before_now(Duration::from_secs(10)).0;
        assert!(now - then >= 9_990 && now - then <= 10_100, "{now} {then}");
    }
}
