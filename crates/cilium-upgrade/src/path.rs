//! The path: Cilium's upgrade guide goes one minor at a time, each minor at its latest patch.
//! From `1.15.9` to `1.17`: the latest 1.15 patch first, then the latest 1.16, then the latest
//! 1.17 (or exactly `1.17.N` when asked for).

use std::fmt;
use std::str::FromStr;

use cilium_values::{NEWEST_MINOR, OLDEST_MINOR};
use semver::Version;

use crate::Error;

/// Where to upgrade to: `--to 1.17` (its latest patch) or `--to 1.17.3` (exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// The minor (`17`).
    pub minor: u64,
    /// The exact patch, when given.
    pub patch: Option<u64>,
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(text: &str) -> Result<Target, Error> {
        let bad = || Error::BadTarget {
            text: text.to_owned(),
        };
        let parts: Vec<&str> = text.trim_start_matches('v').split('.').collect();
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
        match parts.as_slice() {
            ["1", minor] => Ok(Target {
                minor: number(minor)?,
                patch: None,
            }),
            ["1", minor, patch] => Ok(Target {
                minor: number(minor)?,
                patch: Some(number(patch)?),
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "1.{}.{patch}", self.minor),
            None => write!(f, "1.{}", self.minor),
        }
    }
}

/// The newest released chart this tool can upgrade to: a minor the gate has agent defaults for.
pub fn newest_supported(available: &[Version]) -> Option<Version> {
    released(available)
        .filter(|v| v.minor <= u64::from(NEWEST_MINOR))
        .max()
}

fn released(available: &[Version]) -> impl Iterator<Item = Version> + '_ {
    available
        .iter()
        .filter(|v| v.major == 1 && v.pre.is_empty())
        .cloned()
}

/// The hops from `current` to `target` among the `available` chart versions (`None`: the newest
/// supported). Refuses a downgrade, a version no chart is available for, a minor with no chart on
/// the way, and minors the gate cannot weigh (before 1.15, after 1.`NEWEST_MINOR`). Empty when
/// `current` is already the target.
pub fn upgrade_path(
    current: &Version,
    target: Option<Target>,
    available: &[Version],
    source: &str,
) -> Result<Vec<Version>, Error> {
    let listed = || {
        let mut versions: Vec<String> = released(available).map(|v| v.to_string()).collect();
        versions.sort();
        versions.join(", ")
    };
    if current.major != 1
        || current.minor < u64::from(OLDEST_MINOR)
        || current.minor > u64::from(NEWEST_MINOR)
    {
        return Err(Error::UnsupportedStart {
            version: current.to_string(),
        });
    }
    let target = match target {
        Some(target) => target,
        None => {
            let newest = newest_supported(available).ok_or_else(|| Error::NoCharts {
                store: source.to_owned(),
            })?;
            Target {
                minor: newest.minor,
                patch: Some(newest.patch),
            }
        }
    };
    if target.minor > u64::from(NEWEST_MINOR) {
        return Err(Error::UnsupportedTarget {
            target: target.to_string(),
        });
    }
    let latest_of = |minor: u64| released(available).filter(|v| v.minor == minor).max();
    let target_version = match target.patch {
        Some(patch) => {
            let exact = Version::new(1, target.minor, patch);
            if exact != *current && !released(available).any(|v| v == exact) {
                return Err(Error::ChartMissing {
                    version: exact.to_string(),
                    store: source.to_owned(),
                    available: listed(),
                });
            }
            exact
        }
        None => latest_of(target.minor).ok_or_else(|| Error::ChartMissing {
            version: format!("1.{}.x", target.minor),
            store: source.to_owned(),
            available: listed(),
        })?,
    };
    if target_version < *current {
        return Err(Error::Downgrade {
            current: current.to_string(),
            target: target_version.to_string(),
        });
    }
    let mut hops = Vec::new();
    for minor in current.minor..=target_version.minor {
        let hop = if minor == target_version.minor {
            target_version.clone()
        } else {
            latest_of(minor).ok_or_else(|| Error::ChartMissing {
                version: format!("1.{minor}.x"),
                store: source.to_owned(),
                available: listed(),
            })?
        };
        if hop > *current && hops.last() != Some(&hop) {
            hops.push(hop);
        }
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn released_charts() -> Vec<Version> {
        [
            "1.15.9",
            "1.15.19",
            "1.16.19",
            "1.17.3",
            "1.17.18",
            "1.18.12",
            "1.19.6",
            "1.20.0",
            "1.19.0-rc.1",
            // Not released: a minor the gate has no agent defaults for.
            "1.21.0",
        ]
        .into_iter()
        .map(v)
        .collect()
    }

    fn path(current: &str, to: Option<&str>) -> Result<Vec<String>, Error> {
        let target = to.map(str::parse).transpose()?;
        Ok(
            upgrade_path(&v(current), target, &released_charts(), "DIR")?
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }

    #[test]
    fn one_minor_at_a_time_each_at_its_latest_patch() -> Result<(), Error> {
        assert_eq!(
            path("1.15.9", Some("1.17"))?,
            ["1.15.19", "1.16.19", "1.17.18"]
        );
        assert_eq!(
            path("1.17.3", Some("1.19.6"))?,
            ["1.17.18", "1.18.12", "1.19.6"]
        );
        assert_eq!(
            path("1.15.9", Some("1.17.3"))?,
            ["1.15.19", "1.16.19", "1.17.3"]
        );
        assert_eq!(path("1.15.9", Some("1.15"))?, ["1.15.19"]);
        // The default is the newest chart the gate can weigh, not 1.21.
        assert_eq!(path("1.18.12", None)?, ["1.19.6", "1.20.0"]);
        assert_eq!(path("1.19.6", Some("1.20"))?, ["1.20.0"]);
        assert!(path("1.20.0", None)?.is_empty());
        assert!(path("1.17.18", Some("1.17"))?.is_empty());
        Ok(())
    }

    #[test]
    fn downgrades_unknown_versions_and_1_21_are_refused_with_the_reason() {
        let err = path("1.17.3", Some("1.16")).unwrap_err().to_string();
        assert!(
            err.contains("downgrade") && err.contains("1.16.19"),
            "{err}"
        );
        let err = path("1.15.9", Some("1.17.5")).unwrap_err().to_string();
        assert!(
            err.contains("1.17.5") && err.contains("DIR") && err.contains("1.17.18"),
            "{err}"
        );
        let err = path("1.15.9", Some("1.21")).unwrap_err().to_string();
        assert!(err.contains("1.21") && err.contains("1.20"), "{err}");
        let err = path("1.14.2", Some("1.15")).unwrap_err().to_string();
        assert!(err.contains("1.14.2"), "{err}");
        let err = path("1.21.0", None).unwrap_err().to_string();
        assert!(err.contains("1.21.0") && err.contains("1.20.x"), "{err}");
        assert!(matches!(
            "2.0".parse::<Target>(),
            Err(Error::BadTarget { .. })
        ));
        let mut gap = released_charts();
        gap.retain(|c| c.minor != 16);
        let err = upgrade_path(
            &v("1.15.9"),
            Some(Target {
                minor: 17,
                patch: None,
            }),
            &gap,
            "DIR",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("1.16.x"), "{err}");
    }
}
