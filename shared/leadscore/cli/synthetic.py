"""Seeded synthetic HubSpot contacts for the default model, the demo and the tests.

Each contact is a dict of HubSpot internal property names to strings (empty = not set),
as a CRM export or the contacts API returns them. A hidden propensity decides whether the
contact converted (`lifecyclestage` opportunity/customer, about 13 % of contacts):
senior titles at mid-sized companies with a business address, referrals and direct
traffic, many recent visits and buying intent convert more; students, free-mail
addresses and opted-out contacts less. Some of that propensity (buying intent, expressed
only in the free-text `message`) is invisible to the model, as in real life.

`generate_contacts(n, seed)` is a pure function of its arguments. Timestamps are relative
to `now`, by default the fixed `SYNTHETIC_NOW` (so the default model trains
deterministically); pass `now=datetime.now(UTC)` to get contacts that look fresh today.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta

SYNTHETIC_NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)

# (title, weight, fit): fit is the title's effect on conversion log-odds.
JOB_TITLES = [
    ("CEO", 4, 1.0), ("Founder", 4, 0.9), ("Co-founder", 3, 0.9), ("CTO", 4, 1.0),
    ("CFO", 2, 0.5), ("VP Sales", 4, 1.1), ("VP Marketing", 3, 1.0),
    ("Head of Marketing", 4, 0.9), ("Head of Sales", 3, 1.0), ("Director of Operations", 3, 0.6),
    ("Marketing Manager", 8, 0.5), ("Sales Manager", 7, 0.6), ("Product Manager", 5, 0.3),
    ("Business Development Manager", 5, 0.5), ("Operations Manager", 4, 0.2),
    ("Engineer", 6, -0.3), ("Software Engineer", 6, -0.3), ("Consultant", 5, 0.0),
    ("Analyst", 5, -0.2), ("HR Manager", 3, -0.4), ("Freelancer", 3, -0.6),
    ("Student", 7, -1.4), ("Intern", 4, -1.2), ("Teacher", 2, -0.8),
]
STUDENT_TITLES = {"Student", "Intern", "Teacher"}

# HubSpot's numemployees enumeration: (range, weight, fit).
COMPANY_SIZES = [
    ("1-5", 18, -0.6), ("5-25", 22, -0.1), ("25-50", 15, 0.2), ("50-100", 13, 0.4),
    ("100-500", 15, 0.6), ("500-1000", 8, 0.5), ("1000+", 9, 0.3),
]

# (country, weight, fit, phone prefix)
COUNTRIES = [
    ("India", 60, 0.2, "+91"), ("United States", 10, 0.3, "+1"), ("United Kingdom", 5, 0.2, "+44"),
    ("Singapore", 4, 0.3, "+65"), ("United Arab Emirates", 4, 0.2, "+971"),
    ("Germany", 3, 0.0, "+49"), ("Australia", 3, 0.1, "+61"), ("Canada", 2, 0.1, "+1"),
    ("Nigeria", 3, -0.4, "+234"), ("Bangladesh", 2, -0.3, "+880"),
    ("Philippines", 2, -0.2, "+63"), ("Brazil", 2, -0.2, "+55"),
]

# hs_analytics_source: (value, weight, fit)
SOURCES = [
    ("ORGANIC_SEARCH", 25, 0.3), ("PAID_SEARCH", 15, 0.2), ("EMAIL_MARKETING", 10, 0.1),
    ("SOCIAL_MEDIA", 14, -0.3), ("REFERRALS", 8, 0.8), ("OTHER_CAMPAIGNS", 6, -0.1),
    ("DIRECT_TRAFFIC", 14, 0.4), ("OFFLINE", 8, 0.2),
]

FREE_MAIL = [
    ("gmail.com", 55), ("yahoo.com", 10), ("yahoo.co.in", 8), ("outlook.com", 10),
    ("hotmail.com", 6), ("rediffmail.com", 6), ("icloud.com", 3), ("protonmail.com", 2),
]

FIRST_NAMES = [
    "Aarav", "Vivaan", "Aditya", "Arjun", "Sai", "Rohan", "Karan", "Rahul", "Vikram", "Amit",
    "Priya", "Ananya", "Diya", "Isha", "Kavya", "Neha", "Pooja", "Sneha", "Meera", "Riya",
    "Suresh", "Ramesh", "Lakshmi", "Deepa", "Farhan", "Zoya", "Imran", "Harpreet", "Gurpreet",
    "Anil", "John", "Emily", "Michael", "Sarah", "David", "Olivia", "James", "Sophia", "Liam",
    "Emma", "Wei", "Mei", "Ahmed", "Fatima", "Chinedu", "Ngozi", "Lucas", "Ana", "Tan", "Nur",
]
LAST_NAMES = [
    "Sharma", "Verma", "Gupta", "Patel", "Reddy", "Iyer", "Nair", "Menon", "Singh", "Kumar",
    "Rao", "Das", "Chatterjee", "Banerjee", "Mukherjee", "Joshi", "Kulkarni", "Deshpande",
    "Mehta", "Shah", "Khan", "Ali", "Pillai", "Agarwal", "Bose", "Smith", "Johnson", "Brown",
    "Williams", "Miller", "Davis", "Wilson", "Taylor", "Lee", "Chen", "Wong", "Tan", "Lim",
    "Okafor", "Adeyemi", "Silva", "Santos", "Müller", "Schmidt", "Hassan", "Rahman",
]
COMPANY_STEMS = [
    "Nimbus", "Vertex", "Saffron", "Indus", "Lotus", "Zenith", "Quantum", "Orbit", "Cobalt",
    "Monsoon", "Banyan", "Peacock", "Tusker", "Ganga", "Deccan", "Kaveri", "Himalaya", "Bluefin",
    "Brightpath", "Crestline", "Northwind", "Silverline", "Greenfield", "Redwood", "Skyline",
    "Pinnacle", "Summit", "Harbor", "Ironbridge", "Starlight", "Tata", "Apex", "Mosaic",
]
COMPANY_KINDS = [
    "Technologies", "Analytics", "Labs", "Solutions", "Systems", "Software", "Retail",
    "Logistics", "Healthcare", "Fintech", "Media", "Consulting", "Foods", "Motors", "Infra",
]
COMPANY_FORMS = ["Pvt Ltd", "Ltd", "Inc", "LLP", "", "", ""]
TLDS = [(".com", 45), (".in", 20), (".co.in", 12), (".io", 13), (".co", 10)]
COLLEGES = ["IIT Bombay", "Delhi University", "BITS Pilani", "Anna University", "VIT Vellore"]

HIGH_INTENT_MESSAGES = [
    "Looking for a quote for {seats} seats by next quarter.",
    "We want a demo for our sales team of {seats} this week.",
    "Please share enterprise pricing, we are evaluating vendors for {seats} users.",
    "Our current tool contract ends next month; need to migrate {seats} reps quickly.",
    "Can someone call me about a pilot? Budget is approved.",
    "Need pricing and a security questionnaire for procurement.",
]
MID_INTENT_MESSAGES = [
    "Interested in how this integrates with HubSpot.",
    "Could you send a product brochure?",
    "Comparing a few options for next year, please share details.",
    "What does onboarding look like?",
    "Do you support INR billing?",
]
LOW_INTENT_MESSAGES = [
    "just browsing",
    "Doing a college project on CRM tools.",
    "Is there a free version?",
    "Looking for a job in your company.",
    "Please remove me from your list.",
    "test",
]


def _weighted(rng: random.Random, items: list[tuple], weight_at: int = 1) -> tuple:
    return rng.choices(items, weights=[item[weight_at] for item in items], k=1)[0]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def _iso(moment: datetime) -> str:
    # HubSpot's datetime format: UTC with milliseconds and a Z.
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _companies(rng: random.Random, count: int) -> list[tuple[str, str, tuple]]:
    """(name, domain, size) for a pool of companies contacts work at."""
    pool, domains = [], set()
    for _ in range(count):
        stem, kind = rng.choice(COMPANY_STEMS), rng.choice(COMPANY_KINDS)
        name = " ".join(p for p in (stem, kind, rng.choice(COMPANY_FORMS)) if p)
        domain = _slug(stem + kind) + _weighted(rng, TLDS)[0]
        while domain in domains:
            domain = _slug(stem + kind) + str(rng.randint(2, 99)) + _weighted(rng, TLDS)[0]
        domains.add(domain)
        pool.append((name, domain, _weighted(rng, COMPANY_SIZES)))
    return pool


def _title_variant(rng: random.Random, title: str) -> str:
    """Free-text job titles are messy: case and spacing vary."""
    roll = rng.random()
    if roll < 0.05:
        return title.lower()
    if roll < 0.07:
        return title.upper()
    if roll < 0.09:
        return f" {title} "
    return title


def _phone(rng: random.Random, prefix: str) -> str:
    if prefix == "+91":
        return f"+91 {rng.choice('6789')}{rng.randint(0, 999_999_999):09d}"
    return f"{prefix} {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"


def _message(rng: random.Random, intent: float) -> str:
    if rng.random() < 0.35:
        return ""
    pick = intent + rng.gauss(0, 0.6)
    pool = (HIGH_INTENT_MESSAGES if pick > 0.8
            else LOW_INTENT_MESSAGES if pick < -0.6 else MID_INTENT_MESSAGES)
    return rng.choice(pool).format(seats=rng.choice([5, 10, 25, 50, 100, 250]))


def _stage(rng: random.Random, converted: bool, propensity: float) -> str:
    if converted:
        return "customer" if rng.random() < 0.4 else "opportunity"
    if propensity > 0.3 and rng.random() < 0.5:
        return "salesqualifiedlead" if rng.random() < 0.35 else "marketingqualifiedlead"
    return "lead" if rng.random() < 0.6 else "subscriber"


def _consent(rng: random.Random, created: datetime, now: datetime) -> tuple[str, str]:
    roll = rng.random()
    purposes = ("lead_scoring;ai_enrichment" if roll < 0.62
                else "lead_scoring" if roll < 0.87 else "")
    if not purposes and rng.random() < 0.5:
        return "", ""  # never asked
    span = max(0.0, (now - created).total_seconds())
    return purposes, _iso(created + timedelta(seconds=rng.uniform(0, span)))


def generate_contacts(n: int, seed: int, *, now: datetime | None = None) -> list[dict[str, str]]:
    """`n` HubSpot-style contacts; the same (n, seed, now) always gives the same contacts."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    now = (now or SYNTHETIC_NOW).astimezone(UTC)
    companies = _companies(rng, max(20, n // 6))
    contacts = []
    used_emails: set[str] = set()  # HubSpot rejects a second contact with the same e-mail
    for i in range(n):
        title, _, title_fit = _weighted(rng, JOB_TITLES)
        student = title in STUDENT_TITLES
        company, domain, (size, _, size_fit) = rng.choice(companies)
        if student:
            company, domain, size, size_fit = rng.choice(COLLEGES), "", "", -0.3
        country, _, country_fit, phone_prefix = _weighted(rng, COUNTRIES)
        source, _, source_fit = _weighted(rng, SOURCES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)

        free_mail = not domain or rng.random() < 0.35
        if free_mail:
            domain = _weighted(rng, FREE_MAIL)[0]
            local = f"{_slug(first)}{rng.choice(['.', '_', ''])}{_slug(last)}{rng.randint(1, 999)}"
        else:
            local = f"{_slug(first)}.{_slug(last)}" if rng.random() < 0.7 else _slug(first)

        engagement = rng.gauss(0, 1)  # drives visits, page views and recency
        intent = rng.gauss(0, 1)  # visible only in the free-text message
        visits = int(math.exp(1.2 + 0.85 * engagement + rng.gauss(0, 0.4)) - 0.5)
        visits = max(0, visits)
        page_views = visits + sum(int(rng.expovariate(0.6)) for _ in range(visits))
        days_since_visit = rng.expovariate(1.0 / (4.0 + 90.0 * _sigmoid(-1.2 * engagement)))
        optout = rng.random() < 0.06
        created = now - timedelta(days=days_since_visit + rng.expovariate(1 / 120.0))

        logit = (
            -2.5
            + 0.9 * title_fit
            + size_fit
            + country_fit
            + source_fit
            + 0.75 * engagement
            + 0.7 * intent
            - 0.012 * min(days_since_visit, 180.0)
            - (0.6 if free_mail else 0.0)
            - (1.0 if optout else 0.0)
            + rng.gauss(0, 0.5)
        )
        propensity = _sigmoid(logit)
        converted = rng.random() < propensity

        last_visit = ""
        if visits > 0:
            moment = now - timedelta(days=days_since_visit)
            # Most exports carry ISO-8601; some integrations write epoch milliseconds.
            last_visit = (str(int(moment.timestamp() * 1000)) if rng.random() < 0.05
                          else _iso(moment))
        purposes, consent_at = _consent(rng, created, now)
        email, suffix = f"{local}@{domain}", 1
        while email in used_emails:
            suffix += 1
            email = f"{local}{suffix}@{domain}"
        used_emails.add(email)
        contact = {
            "hs_object_id": str(7_000_001 + i),
            "email": email,
            "firstname": first,
            "lastname": last,
            "phone": _phone(rng, phone_prefix) if rng.random() < 0.8 else "",
            "company": company,
            "jobtitle": _title_variant(rng, title) if rng.random() < 0.9 else "",
            "numemployees": size if rng.random() < 0.85 else "",
            "country": country if rng.random() < 0.95 else "",
            "hs_analytics_source": source if rng.random() < 0.97 else "",
            "hs_analytics_num_visits": str(visits),
            "hs_analytics_num_page_views": str(page_views),
            "hs_analytics_last_visit_timestamp": last_visit,
            "hs_email_optout": ("true" if optout else "false") if rng.random() < 0.97 else "",
            "message": _message(rng, intent),
            "createdate": _iso(created),
            "lifecyclestage": _stage(rng, converted, propensity),
            "dpdp_consent_purposes": purposes,
            "dpdp_consent_updated_at": consent_at,
        }
        contacts.append(contact)
    return contacts
