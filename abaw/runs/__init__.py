"""Run folders and what is made of them: the folder (run.json, config hash), the runs database, the leaderboard."""
