//! A person's or token's role in a project. Roles are ordered: an owner
//! may do what a member may, a member what a viewer may.

use std::fmt;

/// What a role may do, in order of power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads status, deployments, logs and env keys; never secret values.
    Viewer,
    /// Apps, deploys, operations, env: what ships code.
    Member,
    /// Members, tokens, cloud accounts, anything that spends money or
    /// destroys servers.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Member, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Whether this role may do what `needed` allows.
    pub fn covers(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Role::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown role `{text}`: expected owner, member or viewer"
            ))
        })
    }
}

impl utoipa::PartialSchema for Role {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Role::ALL.map(Role::as_str)))
            .description(Some(
                "`owner` (members, tokens, money), `member` (apps, deploys, env), \
                 `viewer` (read only, never secret values)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Role {}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_cover_the_ones_below_them() {
        let table = [
            (Role::Owner, Role::Owner, true),
            (Role::Owner, Role::Member, true),
            (Role::Owner, Role::Viewer, true),
            (Role::Member, Role::Owner, false),
            (Role::Member, Role::Member, true),
            (Role::Member, Role::Viewer, true),
            (Role::Viewer, Role::Owner, false),
            (Role::Viewer, Role::Member, false),
            (Role::Viewer, Role::Viewer, true),
        ];
        for (held, needed, allowed) in table {
            assert_eq!(held.covers(needed), allowed, "{held} for {needed}");
        }
    }

    #[test]
    fn roles_parse_only_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse("Owner"), None);
    }
}
