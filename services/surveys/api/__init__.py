"""Surveys' HTTP routes, by who calls them: `responses` (survey tools and dashboards submit and read),
`admin` (survey definitions, contacts, campaigns) and `pages` (the public pages respondents reach).
"""
