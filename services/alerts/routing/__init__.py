"""Who hears about an alert, on which channel and when:
`plan` (pure), `config` (the routing YAML) and `timing` (quiet hours, the digest moment).
"""
