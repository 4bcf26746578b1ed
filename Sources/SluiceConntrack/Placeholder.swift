// Placeholder until the conntrack implementation lands.
