//! The states of a webhook subscription and of a delivery (contract §7), as stored and on the
//! wire.

/// Declares a closed set of names stored and sent as strings.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// The stored and wire form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Reads the stored form; `None` for anything else.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Whether a subscription passed its validation handshake.
    ProvisioningState {
        Succeeded = "Succeeded",
        /// The handshake failed; the validation link works until it expires.
        AwaitingManualAction = "AwaitingManualAction",
        /// The validation link expired.
        Failed = "Failed",
    }
);

named_enum!(
    /// Whether a validated subscription receives events.
    SubscriptionStatus {
        Active = "Active",
        /// After an endpoint answered 410, until the next PUT.
        Disabled = "Disabled",
    }
);

named_enum!(
    /// Where a delivery stands.
    DeliveryStatus {
        Pending = "Pending",
        Retrying = "Retrying",
        Delivered = "Delivered",
        DeadLettered = "DeadLettered",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            ProvisioningState::Succeeded,
            ProvisioningState::AwaitingManualAction,
            ProvisioningState::Failed,
        ] {
            assert_eq!(ProvisioningState::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            serde_json::to_string(&DeliveryStatus::DeadLettered).unwrap(),
            r#""DeadLettered""#
        );
        assert_eq!(SubscriptionStatus::parse("active"), None, "names are exact");
    }
}
