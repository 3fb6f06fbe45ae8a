//! What a peer may send.

use core::fmt;
use core::ops::BitOr;
use core::str::FromStr;

use serde::Deserialize;

/// A small set of roles; each message kind needs exactly one of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Roles(u8);

impl Roles {
    /// No role: the peer can authenticate but not change anything.
    pub const NONE: Roles = Roles(0);
    /// PATH_STATE and NODE_STATE.
    pub const STATE: Roles = Roles(1 << 0);
    /// CAPABILITY.
    pub const CAPABILITY: Roles = Roles(1 << 1);
    /// POLICY.
    pub const POLICY: Roles = Roles(1 << 2);
    /// QUERY.
    pub const QUERY: Roles = Roles(1 << 3);
    /// Every role.
    pub const ALL: Roles = Roles(0b1111);

    const NAMED: [(Roles, &'static str); 4] = [
        (Roles::STATE, "state"),
        (Roles::CAPABILITY, "capability"),
        (Roles::POLICY, "policy"),
        (Roles::QUERY, "query"),
    ];

    /// True if every role in `other` is in `self`.
    pub const fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    /// The names of the roles held, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Roles::NAMED
            .into_iter()
            .filter(move |(r, _)| self.contains(*r))
            .map(|(_, n)| n)
    }

    /// One role by name (`state`, `capability`, `policy`, `query`, `all`).
    pub fn from_name(name: &str) -> Option<Roles> {
        if name == "all" {
            return Some(Roles::ALL);
        }
        Roles::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(r, _)| *r)
    }
}

impl BitOr for Roles {
    type Output = Roles;
    fn bitor(self, rhs: Roles) -> Roles {
        self.union(rhs)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for n in self.names() {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(n)?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Roles({self})")
    }
}

/// A role name that is not one of the four (or `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown role '{}' (expected state, capability, policy, query or all)",
            self.0
        )
    }
}

impl std::error::Error for UnknownRole {}

/// Parses a comma-separated list such as `state,query`; empty means none.
impl FromStr for Roles {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Roles, UnknownRole> {
        s.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .try_fold(Roles::NONE, |acc, n| {
                Roles::from_name(n)
                    .map(|r| acc | r)
                    .ok_or_else(|| UnknownRole(n.to_string()))
            })
    }
}

/// For configuration files: `roles = ["state", "query"]`.
impl TryFrom<Vec<String>> for Roles {
    type Error = UnknownRole;
    fn try_from(names: Vec<String>) -> Result<Roles, UnknownRole> {
        names.iter().try_fold(Roles::NONE, |acc, n| {
            Roles::from_name(n)
                .map(|r| acc | r)
                .ok_or_else(|| UnknownRole(n.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        let r: Roles = "query, state".parse().expect("valid");
        assert!(r.contains(Roles::STATE) && r.contains(Roles::QUERY));
        assert!(!r.contains(Roles::POLICY));
        assert_eq!(r.to_string(), "state,query");
        assert_eq!("".parse::<Roles>(), Ok(Roles::NONE));
        assert_eq!(Roles::NONE.to_string(), "none");
        assert_eq!("all".parse::<Roles>(), Ok(Roles::ALL));
        assert!("admin".parse::<Roles>().is_err());
    }

    #[test]
    fn deserialises_from_a_list() {
        #[derive(Deserialize)]
        struct P {
            roles: Roles,
        }
        let p: P = serde_json::from_str(r#"{"roles":["capability","policy"]}"#).expect("valid");
        assert_eq!(p.roles, Roles::CAPABILITY | Roles::POLICY);
        assert!(serde_json::from_str::<P>(r#"{"roles":["root"]}"#).is_err());
    }
}
