"""The run's report: the leaderboard and lifts (`report`) and the files and plots written for it (`files`)."""
