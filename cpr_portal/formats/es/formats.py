"""Puerto Rico Spanish formats: dates in Spanish words, numbers as in US dollars.

Django's generic "es" formats write "1.250,00". On the island amounts are written
"$1,250.00" in Spanish as in English, so the separators here are the US ones. Dates
read "4 de diciembre de 2026" and times use the 12-hour clock, as Puerto Rico writes
them. FORMAT_MODULE_PATH in settings points Django at this module.
"""

DATE_FORMAT = r"j \d\e F \d\e Y"
TIME_FORMAT = "g:i a"
DATETIME_FORMAT = r"j \d\e F \d\e Y, g:i a"
YEAR_MONTH_FORMAT = r"F \d\e Y"
MONTH_DAY_FORMAT = r"j \d\e F"
SHORT_DATE_FORMAT = "m/d/Y"
SHORT_DATETIME_FORMAT = "m/d/Y g:i a"
FIRST_DAY_OF_WEEK = 0  # Sunday, as on calendars in Puerto Rico.

# strftime syntax. The ISO form comes first because the portal's date inputs send it.
# Puerto Rico writes short dates month first, as in the US (12/04/2026 is 4 December),
# in Spanish as in English, so the day-first forms of Django's "es" are not accepted:
# a person typing from habit would otherwise book or apply for the wrong month.
DATE_INPUT_FORMATS = [
    "%Y-%m-%d",  # '2026-12-04'
    "%m/%d/%Y",  # '12/04/2026'
    "%m/%d/%y",  # '12/04/26'
]
DATETIME_INPUT_FORMATS = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
]

DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
