// Placeholder until the Maglev implementation lands.
