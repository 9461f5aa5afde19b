//! The window plan: which minute, hour and day fields each window total reads, computed here so
//! the meter scripts only run their HMGETs and sums (building the field names in Lua cost about
//! 80 µs per call, several times the HMGETs themselves).
//!
//! The cut is the one `capped_totals` in `lua/windows.lua` makes (and still makes when the plan
//! does not apply): a window of M minutes at minute b is the minutes a..b with a = b - M + 1,
//! cut greedily from the left into whole days, then whole hours, then single minutes. The script
//! raises a to the meter's horizon first, which only it knows; the plan is cut from the
//! unraised a and carries the smallest a of all windows, so the script uses the plan only when
//! the horizon is at or below it (then raising changes nothing) and otherwise cuts the windows
//! itself as before. Any window at most the retention long starts at or above the horizon
//! unless `now` went back by more than the retention minus the window (a day for the shipped
//! windows), so the fallback is for clock trouble only.

use std::collections::HashMap;

const DAY: i64 = 1_440;
const HOUR: i64 = 60;

/// The script arguments of the window plan: first the number of values that follow, then the
/// smallest window start (minute), the field counts of the minute, hour and day roll-ups, their
/// field names (deduplicated across windows, in that order), and per window its number of runs
/// followed by `(roll-up 1..=3, first position, count)` per run: consecutive positions of one
/// roll-up's HMGET reply to add up.
///
/// A plan of no values (`["0"]`) tells the script to cut the windows itself: used when a window
/// is longer than the retention (the horizon, not the window, would then bound the work).
pub(crate) fn window_plan(now_min: i64, windows: &[i64], retention_minutes: i64) -> Vec<String> {
    if windows.is_empty() || windows.iter().any(|&m| m > retention_minutes) {
        return vec!["0".to_owned()];
    }
    // Per roll-up (minute, hour, day): field ids in order of first use, and id -> position.
    let mut fields: [Vec<i64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut index: [HashMap<i64, usize>; 3] = [HashMap::new(), HashMap::new(), HashMap::new()];
    let mut plans: Vec<Vec<(usize, usize, usize)>> = Vec::with_capacity(windows.len());
    let mut lo = i64::MAX;
    for &length in windows {
        let mut x = now_min - length + 1;
        lo = lo.min(x);
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        while x <= now_min {
            let (level, id, step) = if x.rem_euclid(DAY) == 0 && x + DAY - 1 <= now_min {
                (2, x.div_euclid(DAY), DAY)
            } else if x.rem_euclid(HOUR) == 0 && x + HOUR - 1 <= now_min {
                (1, x.div_euclid(HOUR), HOUR)
            } else {
                (0, x, 1)
            };
            let position = *index[level].entry(id).or_insert_with(|| {
                fields[level].push(id);
                fields[level].len()
            });
            match runs.last_mut() {
                Some((l, first, count)) if *l == level + 1 && *first + *count == position => *count += 1,
                _ => runs.push((level + 1, position, 1)),
            }
            x += step;
        }
        plans.push(runs);
    }
    let mut args = Vec::with_capacity(5 + fields.iter().map(Vec::len).sum::<usize>() + 8 * plans.len());
    args.push(String::new()); // the count, filled in below
    args.push(lo.to_string());
    args.extend(fields.iter().map(|f| f.len().to_string()));
    for level in &fields {
        args.extend(level.iter().map(i64::to_string));
    }
    for runs in &plans {
        args.push(runs.len().to_string());
        for (level, first, count) in runs {
            args.push(level.to_string());
            args.push(first.to_string());
            args.push(count.to_string());
        }
    }
    args[0] = (args.len() - 1).to_string();
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums a plan over every field's id standing for its span, to check the runs cover each
    /// window exactly once.
    fn covered(plan: &[String], windows: usize) -> Vec<i64> {
        let v: Vec<i64> = plan.iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(v[0] as usize, v.len() - 1);
        let n = [v[2] as usize, v[3] as usize, v[4] as usize];
        let mut i = 5;
        let mut levels = Vec::new();
        for count in n {
            levels.push(v[i..i + count].to_vec());
            i += count;
        }
        let spans = [1, HOUR, DAY];
        let mut out = Vec::new();
        for _ in 0..windows {
            let runs = v[i] as usize;
            i += 1;
            let mut minutes = 0;
            for _ in 0..runs {
                let (level, first, count) = (v[i] as usize - 1, v[i + 1] as usize, v[i + 2] as usize);
                for p in first..first + count {
                    let _ = levels[level][p - 1];
                    minutes += spans[level];
                }
                i += 3;
            }
            out.push(minutes);
        }
        assert_eq!(i, v.len());
        out
    }

    #[test]
    fn every_window_is_covered_once_with_at_most_253_fields() {
        let windows = [1_440, 4_320, 10_080];
        for now_min in [0, 1, 59, 60, 1_439, 1_440, 29_000_000, 29_000_017, -5, -1_441] {
            let plan = window_plan(now_min, &windows, 11_520);
            assert_eq!(covered(&plan, 3), windows.to_vec(), "at {now_min}");
            let fields: i64 = plan[2..5].iter().map(|s| s.parse::<i64>().unwrap()).sum();
            assert!(fields <= 253, "{fields} fields at {now_min}");
            assert_eq!(plan[1], (now_min - 10_080 + 1).to_string());
        }
    }

    #[test]
    fn windows_longer_than_the_retention_are_left_to_the_script() {
        assert_eq!(window_plan(100, &[20_000], 11_520), vec!["0".to_owned()]);
    }
}
