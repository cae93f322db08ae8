//! What counts as a difference, and against which backend: sans-I/O, so every rule
//! here is tested without a server.
//!
//! With two backends that disagree there is no telling which one is right; the
//! *reference* is the one that holds more (more points, or the database at all), else
//! the first in the config, and the other is described against it. With three or more,
//! the largest group of agreeing backends is the reference.

use super::digest::Digest;

/// Where a difference is: the further down the hierarchy, the more fields are set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub listener: String,
    pub database: String,
    pub retention_policy: Option<String>,
    pub measurement: Option<String>,
    /// `[start, end)` in nanoseconds since the epoch.
    pub window: Option<(i64, i64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// The backend has no such database.
    MissingDatabase,
    MissingRetentionPolicy,
    /// Same name, other `duration / shard group duration / replication`.
    RetentionPolicySettings {
        this: String,
        reference: String,
    },
    /// `SHOW MEASUREMENTS` does not list it.
    MissingMeasurement,
    /// One field's type(s), as `SHOW FIELD KEYS` gives them.
    FieldType {
        field: String,
        this: String,
        reference: String,
    },
    /// Fewer points than the reference (some may also differ).
    Lacks {
        points: u64,
        reference_points: u64,
    },
    /// More points than the reference.
    Extra {
        points: u64,
        reference_points: u64,
    },
    /// As many points as the reference, but not the same ones or not the same values.
    Differs {
        points: u64,
    },
}

impl What {
    /// The name used in `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            What::MissingDatabase => "missing-database",
            What::MissingRetentionPolicy => "missing-retention-policy",
            What::RetentionPolicySettings { .. } => "retention-policy-settings",
            What::MissingMeasurement => "missing-measurement",
            What::FieldType { .. } => "field-type",
            What::Lacks { .. } => "lacks-points",
            What::Extra { .. } => "extra-points",
            What::Differs { .. } => "points-differ",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub place: Place,
    /// The backend described.
    pub backend: String,
    /// The backend it is described against.
    pub reference: String,
    pub what: What,
}

/// The index of the reference among `values`: the largest group of equal values, ties
/// broken by `rank` (larger first), then by position.
pub fn reference<T: PartialEq>(values: &[T], rank: impl Fn(&T) -> u64) -> usize {
    let mut best = 0;
    let mut best_key = (0usize, 0u64);
    for (i, v) in values.iter().enumerate() {
        let members = values.iter().filter(|w| *w == v).count();
        let key = (members, rank(v));
        if i == 0 || key > best_key {
            best = i;
            best_key = key;
        }
    }
    best
}

/// The differences of one window, `digests[i]` being backend `names[i]`'s.
pub fn window(place: &Place, names: &[String], digests: &[Digest]) -> Vec<Difference> {
    if digests.windows(2).all(|w| w[0] == w[1]) {
        return Vec::new();
    }
    let r = reference(digests, |d| d.points);
    let reference_points = digests[r].points;
    digests
        .iter()
        .enumerate()
        .filter(|(_, d)| **d != digests[r])
        .map(|(i, d)| Difference {
            place: place.clone(),
            backend: names[i].clone(),
            reference: names[r].clone(),
            what: if d.points < reference_points {
                What::Lacks {
                    points: d.points,
                    reference_points,
                }
            } else if d.points > reference_points {
                What::Extra {
                    points: d.points,
                    reference_points,
                }
            } else {
                What::Differs { points: d.points }
            },
        })
        .collect()
}

/// Presence of one thing (database, retention policy, measurement) on each backend.
pub fn presence(place: &Place, names: &[String], present: &[bool], what: What) -> Vec<Difference> {
    if present.iter().all(|p| *p) || !present.iter().any(|p| *p) {
        return Vec::new();
    }
    let r = reference(present, |p| u64::from(*p));
    present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| Difference {
            place: place.clone(),
            backend: names[i].clone(),
            reference: names[r].clone(),
            what: what.clone(),
        })
        .collect()
}

/// A setting that backends holding the thing should agree on; `None` where absent
/// (absence is reported by [`presence`]). `make` builds the `What` from this backend's
/// value and the reference's.
pub fn setting(
    place: &Place,
    names: &[String],
    values: &[Option<String>],
    make: impl Fn(String, String) -> What,
) -> Vec<Difference> {
    let held: Vec<(usize, &String)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .collect();
    if held.windows(2).all(|w| w[0].1 == w[1].1) {
        return Vec::new();
    }
    let only: Vec<&String> = held.iter().map(|(_, v)| *v).collect();
    let r = held[reference(&only, |_| 0)].0;
    let Some(reference_value) = values[r].clone() else {
        return Vec::new();
    };
    held.iter()
        .filter(|(_, v)| **v != reference_value)
        .map(|(i, v)| Difference {
            place: place.clone(),
            backend: names[*i].clone(),
            reference: names[r].clone(),
            what: make((*v).clone(), reference_value.clone()),
        })
        .collect()
}

/// Joins differences of adjacent windows that say the same thing about the same
/// backend into one, summing their points, so a backend that was down for a day is
/// one line and not 24. Keeps the order otherwise.
pub fn merge_windows(differences: Vec<Difference>) -> Vec<Difference> {
    let mut out: Vec<Difference> = Vec::with_capacity(differences.len());
    for d in differences {
        let joined = out.iter_mut().rev().take(64).find_map(|prev| {
            let (Some((_, prev_end)), Some((start, end))) = (prev.place.window, d.place.window)
            else {
                return None;
            };
            let same_place = Place {
                window: None,
                ..prev.place.clone()
            } == Place {
                window: None,
                ..d.place.clone()
            };
            if !same_place
                || prev_end != start
                || prev.backend != d.backend
                || prev.reference != d.reference
            {
                return None;
            }
            let what = match (&prev.what, &d.what) {
                (
                    What::Lacks {
                        points: a,
                        reference_points: ra,
                    },
                    What::Lacks {
                        points: b,
                        reference_points: rb,
                    },
                ) => What::Lacks {
                    points: a + b,
                    reference_points: ra + rb,
                },
                (
                    What::Extra {
                        points: a,
                        reference_points: ra,
                    },
                    What::Extra {
                        points: b,
                        reference_points: rb,
                    },
                ) => What::Extra {
                    points: a + b,
                    reference_points: ra + rb,
                },
                (What::Differs { points: a }, What::Differs { points: b }) => {
                    What::Differs { points: a + b }
                }
                _ => return None,
            };
            prev.what = what;
            prev.place.window = prev.place.window.map(|(s, _)| (s, end));
            Some(())
        });
        if joined.is_none() {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        ["a", "b", "c", "d"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn d(points: u64, sum: u64) -> Digest {
        Digest { points, sum }
    }

    fn place(window: (i64, i64)) -> Place {
        Place {
            listener: "l".into(),
            database: "db".into(),
            retention_policy: Some("autogen".into()),
            measurement: Some("m".into()),
            window: Some(window),
        }
    }

    #[test]
    fn equal_windows_are_no_difference() {
        assert!(window(&place((0, 1)), &names(2), &[d(3, 9), d(3, 9)]).is_empty());
        assert!(window(&place((0, 1)), &names(2), &[d(0, 0), d(0, 0)]).is_empty());
    }

    #[test]
    fn the_fuller_backend_is_the_reference_of_two() {
        for (digests, backend, reference) in [
            ([d(5, 1), d(3, 2)], "b", "a"),
            ([d(3, 2), d(5, 1)], "a", "b"),
        ] {
            let diffs = window(&place((0, 1)), &names(2), &digests);
            assert_eq!(diffs.len(), 1);
            assert_eq!(diffs[0].backend, backend);
            assert_eq!(diffs[0].reference, reference);
            assert_eq!(
                diffs[0].what,
                What::Lacks {
                    points: 3,
                    reference_points: 5
                }
            );
        }
        let same_count = window(&place((0, 1)), &names(2), &[d(5, 1), d(5, 2)]);
        assert_eq!(same_count[0].what, What::Differs { points: 5 });
        assert_eq!(same_count[0].backend, "b");
    }

    #[test]
    fn the_majority_is_the_reference_of_three() {
        // Even when the odd one out has more points.
        let diffs = window(&place((0, 1)), &names(3), &[d(3, 1), d(9, 2), d(3, 1)]);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].backend, "b");
        assert_eq!(diffs[0].reference, "a");
        assert_eq!(
            diffs[0].what,
            What::Extra {
                points: 9,
                reference_points: 3
            }
        );
    }

    #[test]
    fn presence_names_the_backends_without() {
        let p = Place::default();
        let diffs = presence(&p, &names(3), &[true, false, true], What::MissingDatabase);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].backend, "b");
        assert!(presence(&p, &names(2), &[false, false], What::MissingDatabase).is_empty());
        let diffs = presence(&p, &names(2), &[false, true], What::MissingDatabase);
        assert_eq!(
            (diffs[0].backend.as_str(), diffs[0].reference.as_str()),
            ("a", "b")
        );
    }

    #[test]
    fn settings_are_compared_where_held() {
        let p = Place::default();
        let make = |this, reference| What::RetentionPolicySettings { this, reference };
        let values = [Some("7d".to_string()), None, Some("30d".to_string())];
        let diffs = setting(&p, &names(3), &values, make);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].backend, "c");
        let same = [Some("7d".to_string()), None, Some("7d".to_string())];
        assert!(setting(&p, &names(3), &same, make).is_empty());
    }

    #[test]
    fn adjacent_windows_merge() {
        let mut all = Vec::new();
        for (start, points) in [(0, 1), (10, 2), (30, 4)] {
            all.extend(window(
                &place((start, start + 10)),
                &names(2),
                &[d(points + 5, 7), d(5, 7)],
            ));
        }
        let merged = merge_windows(all);
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(merged[0].place.window, Some((0, 20)));
        assert_eq!(
            merged[0].what,
            What::Lacks {
                points: 10,
                reference_points: 13
            }
        );
        assert_eq!(merged[1].place.window, Some((30, 40)));
    }
}
