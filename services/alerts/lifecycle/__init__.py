"""An alert's life:
`transitions` (what a signal or time does to it, pure), `actions` (what a person does to it) and
`scheduler` (the time-based passes).
"""
