"""A response's way in: `submission` (what a valid one is), `attribution` (which account it answers
for), `revisions` (amending by response id) and `recording` (store, publish, commit).
"""
