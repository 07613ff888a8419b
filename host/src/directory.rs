//! directory: the people who may approve and the groups they are in, read
//! from config. The only place an `ApproverId` is made; never from an agent's key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// `[directory]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    pub people: Vec<PersonConfig>,
    /// Group name → member emails.
    pub groups: BTreeMap<String, Vec<String>>,
}

/// One `[[directory.people]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub slack_id: Option<String>,
    /// The Teams `aadObjectId`.
    #[serde(default)]
    pub teams_id: Option<String>,
    /// Admins are not exempt from any approval rule.
    #[serde(default)]
    pub admin: bool,
}

/// A human in the directory, named by email. Only this module builds one,
/// and only from a directory entry, so an agent's key can never become an
/// approver. It deliberately has no `Deserialize` and no public constructor:
///
/// ```compile_fail
/// let forged = actiongate::directory::ApproverId("agent-key".to_string());
/// ```
///
/// ```compile_fail
/// let forged: actiongate::directory::ApproverId = serde_json::from_str("\"a@b.c\"").unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ApproverId(String);

impl ApproverId {
    /// The person's email, lowercased.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApproverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    id: ApproverId,
    name: String,
    slack_id: Option<String>,
    teams_id: Option<String>,
    admin: bool,
}

impl Person {
    pub fn id(&self) -> &ApproverId {
        &self.id
    }
    pub fn email(&self) -> &str {
        self.id.as_str()
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn slack_id(&self) -> Option<&str> {
        self.slack_id.as_deref()
    }
    pub fn teams_id(&self) -> Option<&str> {
        self.teams_id.as_deref()
    }
    pub fn admin(&self) -> bool {
        self.admin
    }

    /// Whether `identifier` (an email, name, Slack id or Teams id, compared
    /// without case) names this person. Self-approval checks use it, so that
    /// a requester named by any of a person's identities is caught.
    pub fn is_known_as(&self, identifier: &str) -> bool {
        let identifier = identifier.trim();
        !identifier.is_empty()
            && [
                Some(self.id.as_str()),
                Some(self.name.as_str()),
                self.slack_id.as_deref(),
                self.teams_id.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|known| known.eq_ignore_ascii_case(identifier))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory person {index}: email {email:?} is not an email address")]
    InvalidEmail { index: usize, email: String },
    #[error("directory person {email}: name is empty")]
    EmptyName { email: String },
    #[error("directory person {email}: {field} is empty")]
    EmptyId { email: String, field: &'static str },
    #[error("directory: email {email} is listed for more than one person")]
    DuplicateEmail { email: String },
    #[error("directory: slack_id {slack_id} belongs to both {first} and {second}")]
    DuplicateSlackId {
        slack_id: String,
        first: String,
        second: String,
    },
    #[error("directory: teams_id {teams_id} belongs to both {first} and {second}")]
    DuplicateTeamsId {
        teams_id: String,
        first: String,
        second: String,
    },
    #[error("directory: a group name is empty")]
    EmptyGroupName,
    #[error("directory group {group}: member {email} is not a person in the directory")]
    UnknownMember { group: String, email: String },
    #[error("directory group {group}: member {email} is listed twice")]
    DuplicateMember { group: String, email: String },
}

/// The validated directory. Emails are compared without case; Slack ids
/// exactly; Teams ids (GUIDs) without case.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    people: BTreeMap<String, Person>,
    by_slack: BTreeMap<String, String>,
    by_teams: BTreeMap<String, String>,
    groups: BTreeMap<String, BTreeSet<ApproverId>>,
}

fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

impl Directory {
    pub fn from_config(cfg: &DirectoryConfig) -> Result<Directory, DirectoryError> {
        let mut dir = Directory::default();
        for (index, p) in cfg.people.iter().enumerate() {
            let email = normalize_email(&p.email);
            if !looks_like_email(&email) {
                return Err(DirectoryError::InvalidEmail {
                    index,
                    email: p.email.clone(),
                });
            }
            let name = p.name.trim().to_string();
            if name.is_empty() {
                return Err(DirectoryError::EmptyName { email });
            }
            let slack_id = p.slack_id.as_deref().map(str::trim).map(str::to_string);
            let teams_id = p.teams_id.as_deref().map(|t| t.trim().to_ascii_lowercase());
            for (field, value) in [("slack_id", &slack_id), ("teams_id", &teams_id)] {
                if value.as_deref() == Some("") {
                    return Err(DirectoryError::EmptyId { email, field });
                }
            }
            if dir.people.contains_key(&email) {
                return Err(DirectoryError::DuplicateEmail { email });
            }
            if let Some(slack_id) = &slack_id {
                if let Some(first) = dir.by_slack.insert(slack_id.clone(), email.clone()) {
                    return Err(DirectoryError::DuplicateSlackId {
                        slack_id: slack_id.clone(),
                        first,
                        second: email,
                    });
                }
            }
            if let Some(teams_id) = &teams_id {
                if let Some(first) = dir.by_teams.insert(teams_id.clone(), email.clone()) {
                    return Err(DirectoryError::DuplicateTeamsId {
                        teams_id: teams_id.clone(),
                        first,
                        second: email,
                    });
                }
            }
            dir.people.insert(
                email.clone(),
                Person {
                    id: ApproverId(email),
                    name,
                    slack_id,
                    teams_id,
                    admin: p.admin,
                },
            );
        }
        for (group, members) in &cfg.groups {
            if group.trim().is_empty() {
                return Err(DirectoryError::EmptyGroupName);
            }
            let mut set = BTreeSet::new();
            for member in members {
                let email = normalize_email(member);
                let Some(person) = dir.people.get(&email) else {
                    return Err(DirectoryError::UnknownMember {
                        group: group.clone(),
                        email: member.clone(),
                    });
                };
                if !set.insert(person.id.clone()) {
                    return Err(DirectoryError::DuplicateMember {
                        group: group.clone(),
                        email,
                    });
                }
            }
            dir.groups.insert(group.clone(), set);
        }
        Ok(dir)
    }

    pub fn person_by_email(&self, email: &str) -> Option<&Person> {
        self.people.get(&normalize_email(email))
    }

    pub fn person_by_slack_id(&self, slack_id: &str) -> Option<&Person> {
        self.by_slack
            .get(slack_id.trim())
            .and_then(|email| self.people.get(email))
    }

    pub fn person_by_teams_id(&self, teams_id: &str) -> Option<&Person> {
        self.by_teams
            .get(&teams_id.trim().to_ascii_lowercase())
            .and_then(|email| self.people.get(email))
    }

    /// The person an `ApproverId` names, if they are still in this directory
    /// (an id may outlive a config reload).
    pub fn person(&self, id: &ApproverId) -> Option<&Person> {
        self.people.get(id.as_str())
    }

    /// The groups `email` is in, by name.
    pub fn groups_of(&self, email: &str) -> Vec<&str> {
        let email = normalize_email(email);
        self.groups
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m.as_str() == email))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The members of `group`; `None` when no such group is configured.
    pub fn members(&self, group: &str) -> Option<impl Iterator<Item = &Person> + '_> {
        self.groups
            .get(group)
            .map(|members| members.iter().filter_map(|id| self.people.get(id.as_str())))
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn is_member(&self, id: &ApproverId, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|members| members.contains(id))
    }

    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values()
    }
}

/// Dana and Erin, the two data owners of the approval tests.
#[cfg(test)]
pub(crate) fn two_data_owners() -> Directory {
    let cfg: DirectoryConfig = toml::from_str(
        r#"
        [[people]]
        email = "dana@example.com"
        name = "Dana"
        [[people]]
        email = "erin@example.com"
        name = "Erin"
        [groups]
        data-owners = ["dana@example.com", "erin@example.com"]
        "#,
    )
    .unwrap();
    Directory::from_config(&cfg).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [[people]]
        email = "dana@example.com"
        name = "Dana Owner"
        slack_id = "U0DANA"
        teams_id = "00000000-AAD-dana"

        [[people]]
        email = "Erin@Example.com"
        name = "Erin"
        slack_id = "U0ERIN"

        [[people]]
        email = "sam@example.com"
        name = "Sam"
        admin = true

        [[people]]
        email = "olga@example.com"
        name = "Olga Outsider"

        [groups]
        data-owners = ["dana@example.com", "erin@example.com"]
        security = ["sam@example.com", "ERIN@example.com"]
    "#;

    fn example() -> Directory {
        Directory::from_config(&toml::from_str(EXAMPLE).unwrap()).unwrap()
    }

    fn err(text: &str) -> DirectoryError {
        Directory::from_config(&toml::from_str(text).unwrap()).unwrap_err()
    }

    #[test]
    fn lookups() {
        let dir = example();
        let erin = dir.person_by_email("erin@EXAMPLE.com").unwrap();
        assert_eq!(erin.email(), "erin@example.com");
        assert_eq!(erin.name(), "Erin");
        assert_eq!(dir.person_by_slack_id("U0ERIN").unwrap().id(), erin.id());
        assert!(dir.person_by_slack_id("u0erin").is_none());
        assert_eq!(
            dir.person_by_teams_id("00000000-aad-DANA").unwrap().email(),
            "dana@example.com"
        );
        assert_eq!(
            dir.groups_of("erin@example.com"),
            vec!["data-owners", "security"]
        );
        assert!(dir.groups_of("olga@example.com").is_empty());
        let security: Vec<_> = dir
            .members("security")
            .unwrap()
            .map(Person::email)
            .collect();
        assert_eq!(security, vec!["erin@example.com", "sam@example.com"]);
        assert!(dir.members("nobody").is_none());
        assert!(dir.person_by_email("agent-key-123").is_none());
        assert!(dir.person_by_email("sam@example.com").unwrap().admin());
    }

    #[test]
    fn is_known_as_any_identity() {
        let dir = example();
        let dana = dir.person_by_email("dana@example.com").unwrap();
        for name in [
            "dana@example.com",
            " DANA@example.com ",
            "dana owner",
            "U0DANA",
            "00000000-aad-dana",
        ] {
            assert!(dana.is_known_as(name), "{name}");
        }
        assert!(!dana.is_known_as(""));
        assert!(!dana.is_known_as("erin@example.com"));
    }

    #[test]
    fn member_must_be_a_person() {
        assert_eq!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = "A"
                [groups]
                g = ["a@x.io", "ghost@x.io"]
            "#),
            DirectoryError::UnknownMember {
                group: "g".into(),
                email: "ghost@x.io".into()
            }
        );
    }

    #[test]
    fn emails_unique_without_case() {
        assert_eq!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = "A"
                [[people]]
                email = "A@X.io"
                name = "A again"
            "#),
            DirectoryError::DuplicateEmail {
                email: "a@x.io".into()
            }
        );
    }

    #[test]
    fn chat_ids_unique() {
        assert!(matches!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = "A"
                slack_id = "U1"
                [[people]]
                email = "b@x.io"
                name = "B"
                slack_id = "U1"
            "#),
            DirectoryError::DuplicateSlackId { .. }
        ));
        assert!(matches!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = "A"
                teams_id = "abc"
                [[people]]
                email = "b@x.io"
                name = "B"
                teams_id = "ABC"
            "#),
            DirectoryError::DuplicateTeamsId { .. }
        ));
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(matches!(
            err(r#"
                [[people]]
                email = "not-an-email"
                name = "A"
            "#),
            DirectoryError::InvalidEmail { index: 0, .. }
        ));
        assert!(matches!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = " "
            "#),
            DirectoryError::EmptyName { .. }
        ));
        assert!(matches!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = "A"
                slack_id = ""
            "#),
            DirectoryError::EmptyId {
                field: "slack_id",
                ..
            }
        ));
        assert!(matches!(
            err(r#"
                [[people]]
                email = "a@x.io"
                name = "A"
                [groups]
                g = ["a@x.io", "A@x.io"]
            "#),
            DirectoryError::DuplicateMember { .. }
        ));
    }

    #[test]
    fn unknown_fields_refused() {
        assert!(toml::from_str::<DirectoryConfig>(
            r#"
            [[people]]
            email = "a@x.io"
            name = "A"
            exempt = true
        "#
        )
        .is_err());
    }
}
