"""Run folders and what is made of them: run.json and the config hash (info), creating and finishing a folder
(folder), reading its outputs (outputs), the runs database, the leaderboard."""
