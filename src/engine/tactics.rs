//! The ATT&CK Enterprise tactics: ids, names and their order in the kill chain, for the
//! classifier and the model's features alike.

/// One ATT&CK Enterprise tactic, with its position in the kill chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tactic {
    pub id: &'static str,
    pub name: &'static str,
    /// 1 (Reconnaissance) .. 14 (Impact), the order ATT&CK lists them.
    pub stage: u8,
}

/// ATT&CK Enterprise v18 tactics in matrix order.
pub const TACTICS: &[Tactic] = &[
    Tactic {
        id: "TA0043",
        name: "Reconnaissance",
        stage: 1,
    },
    Tactic {
        id: "TA0042",
        name: "Resource Development",
        stage: 2,
    },
    Tactic {
        id: "TA0001",
        name: "Initial Access",
        stage: 3,
    },
    Tactic {
        id: "TA0002",
        name: "Execution",
        stage: 4,
    },
    Tactic {
        id: "TA0003",
        name: "Persistence",
        stage: 5,
    },
    Tactic {
        id: "TA0004",
        name: "Privilege Escalation",
        stage: 6,
    },
    Tactic {
        id: "TA0005",
        name: "Defense Evasion",
        stage: 7,
    },
    Tactic {
        id: "TA0006",
        name: "Credential Access",
        stage: 8,
    },
    Tactic {
        id: "TA0007",
        name: "Discovery",
        stage: 9,
    },
    Tactic {
        id: "TA0008",
        name: "Lateral Movement",
        stage: 10,
    },
    Tactic {
        id: "TA0009",
        name: "Collection",
        stage: 11,
    },
    Tactic {
        id: "TA0011",
        name: "Command and Control",
        stage: 12,
    },
    Tactic {
        id: "TA0010",
        name: "Exfiltration",
        stage: 13,
    },
    Tactic {
        id: "TA0040",
        name: "Impact",
        stage: 14,
    },
];

/// A tactic by its name (any case) or id.
pub fn tactic_by_name(name: &str) -> Option<&'static Tactic> {
    let n = name.trim();
    TACTICS
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(n) || t.id.eq_ignore_ascii_case(n))
}
