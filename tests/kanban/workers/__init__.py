"""Small worker programs used as profile commands by the dispatcher tests, and their harness."""
