//! `CommunicationIdentifierModel` in both directions (contract §2.2): what clients send, how
//! it resolves to a raw id, and what confab writes back.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// `CommunicationIdentifierModel` as confab writes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Cim {
    pub kind: &'static str,
    pub raw_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communication_user: Option<CimId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CimId {
    pub id: String,
}

impl Cim {
    /// The identifier of a raw id: a communication user for `8:acs:…`, else `unknown`
    /// (the retention sweeper acts as `{"kind":"unknown","rawId":"system"}`).
    pub fn from_raw(raw: &str) -> Cim {
        if raw.starts_with("8:acs:") {
            Cim {
                kind: "communicationUser",
                raw_id: raw.to_string(),
                communication_user: Some(CimId {
                    id: raw.to_string(),
                }),
            }
        } else {
            Cim {
                kind: "unknown",
                raw_id: raw.to_string(),
                communication_user: None,
            }
        }
    }
}

/// The raw id under which the retention sweeper acts.
pub const SYSTEM_ACTOR: &str = "system";

/// `CommunicationIdentifierModel` as clients send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CimIn {
    pub raw_id: Option<String>,
    pub kind: Option<String>,
    pub communication_user: Option<CimId>,
    pub phone_number: Option<PhoneIn>,
    pub microsoft_teams_user: Option<TeamsUserIn>,
    pub microsoft_teams_app: Option<TeamsAppIn>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhoneIn {
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsUserIn {
    pub user_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsAppIn {
    pub app_id: String,
}

const KINDS: [&str; 6] = [
    "unknown",
    "communicationUser",
    "phoneNumber",
    "microsoftTeamsUser",
    "microsoftTeamsApp",
    "teamsExtensionUser",
];

/// An identifier resolved to its raw id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub raw_id: String,
    /// Only communication users can be participants.
    pub is_communication_user: bool,
}

impl CimIn {
    /// Resolves to a raw id; `target` names the field in errors.
    pub fn resolve(&self, target: &str) -> Result<Resolved, ApiError> {
        if let Some(kind) = &self.kind {
            if !KINDS.contains(&kind.as_str()) {
                return Err(ApiError::invalid(
                    format!("{target}.kind"),
                    format!(
                        "Unknown identifier kind {kind:?}; expected one of {}.",
                        KINDS.join(", ")
                    ),
                ));
            }
        }
        let user = self.communication_user.as_ref().map(|c| c.id.clone());
        let raw = match (&self.raw_id, &user) {
            (Some(r), Some(u)) if r != u => {
                return Err(ApiError::invalid(
                    target,
                    "rawId and communicationUser.id name different identities.",
                ))
            }
            (Some(r), _) => r.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => {
                if let Some(p) = &self.phone_number {
                    format!("4:{}", p.value)
                } else if let Some(t) = &self.microsoft_teams_user {
                    format!("8:orgid:{}", t.user_id)
                } else if let Some(a) = &self.microsoft_teams_app {
                    format!("28:orgid:{}", a.app_id)
                } else {
                    return Err(ApiError::invalid(
                        target,
                        "The identifier needs rawId or communicationUser.id.",
                    ));
                }
            }
        };
        if raw.is_empty() {
            return Err(ApiError::invalid(
                target,
                "The identifier's rawId is empty.",
            ));
        }
        let is_communication_user = raw.starts_with("8:acs:")
            && matches!(
                self.kind.as_deref(),
                None | Some("communicationUser") | Some("unknown")
            );
        Ok(Resolved {
            raw_id: raw,
            is_communication_user,
        })
    }
}

/// A CIM as stored inside system-message JSON (round-trips through serde).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CimOut {
    pub kind: String,
    pub raw_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communication_user: Option<CimId>,
}

impl From<Cim> for CimOut {
    fn from(c: Cim) -> Self {
        CimOut {
            kind: c.kind.to_string(),
            raw_id: c.raw_id,
            communication_user: c.communication_user,
        }
    }
}

impl CimOut {
    pub fn from_raw(raw: &str) -> CimOut {
        Cim::from_raw(raw).into()
    }
}
