"""The `mdp` command: the one-command demo and the end-to-end benchmark."""
