"""The demo dataset's vocabulary: the small lists every generated text column is gathered from.

Row generators in ``activation_pipeline/demo_data.py`` draw indices into these lists, so the
order of every list is part of the dataset: reordering one changes the generated files.
"""

from __future__ import annotations

import re
import unicodedata

STORE_VIEWS = ["en_gb", "fr_fr", "de_de", "es_es"]
STORE_WEIGHTS = [0.45, 0.25, 0.2, 0.1]
# per store view: 12 first names, 12 last names (flat lists, store view i owns items 12i..12i+11)
FIRST_NAMES = """Oliver Amelia George Isla Harry Zoë Jack Grace Noah Chloë Charlie Freya
Léa Hugo Chloé Louis Inès Jules Zoé Gabriel Amélie Raphaël Manon Théo
Jürgen Mia Lukas Hannah Jonas Lea Felix Sophie Elias Emilia Maximilian Jörg
José Lucía Mateo Sofía Pablo María Hugo Martina Álvaro Paula Daniel Inés""".split()
LAST_NAMES = """Smith Jones Taylor Brown Wilson Evans Thomas Johnson Roberts Walker Wright O'Brien
Martin Bernard Dubois Thomas Robert Petit Durand Leroy Moreau Lefèvre Girard Faure
Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Schäfer
García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Martín Jiménez Núñez""".split()
NAMES_PER_STORE = 12
# three generic domains, then one local domain per store view, then "" (the "name@" malformation)
DOMAINS = [
    "example.com",
    "mail.example.org",
    "inbox.example.net",
    "post.example.co.uk",
    "courriel.example.fr",
    "mail.example.de",
    "correo.example.es",
    "",
]
# per store view: valid prefix (+ 8 digits), too short (no digits follow), with letters (+ 8 digits)
PHONES = [["+4477", "+447700", "+4477OO"], ["+336", "+3361", "+336OO"], ["+49151", "+491512", "+49151OO"], ["+346", "+3461", "+346OO"]]
BRANDS = "Northwind Contoso Fabrikam Tailspin Litware Adatum Proseware Wingtip".split()
ADJECTIVES = "Classic Urban Trail Essential Premium Everyday Vintage Active".split()
CATALOGUE = [  # category path (fixed tree, 2-3 levels), product type, typical price, tax rate, share
    ("Women/Shoes/Sneakers", "Sneakers", 85, 0.2, 10),
    ("Women/Shoes/Boots", "Ankle Boots", 120, 0.2, 7),
    ("Women/Clothing/Dresses", "Wrap Dress", 70, 0.2, 9),
    ("Women/Clothing/Coats", "Parka", 180, 0.2, 5),
    ("Men/Shoes/Loafers", "Loafers", 95, 0.2, 5),
    ("Men/Shoes/Sneakers", "Runners", 90, 0.2, 8),
    ("Men/Clothing/Jackets", "Field Jacket", 140, 0.2, 6),
    ("Men/Clothing/T-Shirts", "T-Shirt", 25, 0.2, 12),
    ("Kids/Clothing", "Hoodie", 30, 0.0, 8),
    ("Kids/Shoes", "Trainers", 40, 0.0, 6),
    ("Accessories/Bags", "Backpack", 60, 0.2, 7),
    ("Accessories/Hats", "Beanie", 20, 0.2, 6),
    ("Home/Textiles", "Throw Blanket", 45, 0.1, 6),
    ("Home/Books", "Travel Guide", 18, 0.055, 5),
]
COLOURS = "black white red blue green grey navy beige brown pink yellow orange".split()  # colour_id = index + 1
COLOUR_WEIGHTS = [20, 14, 6, 9, 6, 10, 10, 7, 6, 5, 3, 4]
STOCK_STATUSES = ["in_stock", "out_of_stock", "discontinued"]
ORDER_STATUSES = ["complete", "canceled", "refunded"]
WEEKDAY_WEIGHTS = [1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25]  # Monday .. Sunday
HOUR_WEIGHTS = [2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 7, 8, 9, 8, 7, 7, 7, 8, 9, 11, 12, 11, 8, 4]
SUBJECTS = [
    "running shoes",
    "leather boots",
    "linen shirts",
    "rain jackets",
    "kids' trainers",
    "weekend bags",
    "wool beanies",
    "cosy throws",
    "denim jackets",
    "ankle boots",
    "travel backpacks",
    "summer dresses",
]
ARTICLE_TEMPLATES = [  # category, title, summary
    ("Guides", "How to choose {}", "Everything to weigh up before you buy {}."),
    ("Care", "Caring for {}", "Simple habits that keep {} looking new for longer."),
    ("Style", "Five ways to style {}", "Our stylists pair {} with pieces you already own."),
    ("News", "What's new in {}", "The launches and collaborations in {} this season."),
    ("Guides", "The complete guide to {}", "From fit to fabric: {}, explained."),
    ("Style", "Why we love {}", "The team on why {} never go out of style."),
]
AUTHORS = ["Zoë Walker", "Léa Moreau", "Jonas Müller", "Lucía Gómez", "Oliver Evans", "Amélie Girard"]


def _ascii(text: str) -> str:
    """Lowercase a-z only: "Zoë" -> "zoe", "O'Brien" -> "obrien" (applied to the small lists, not rows)."""
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower())


def slug(text: str) -> str:
    """URL slug: "Why we love kids' trainers" -> "why-we-love-kids-trainers"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


FIRST_ASCII, LAST_ASCII = [_ascii(s) for s in FIRST_NAMES], [_ascii(s) for s in LAST_NAMES]
EMAIL_LOCALS = [f + sep + last for f in FIRST_ASCII for sep in (".", "", "_") for last in LAST_ASCII]
EMAIL_ENDS = [at + domain for at in ("@", "", "@", " @") for domain in DOMAINS]  # by email fault, then domain
PRODUCT_NAMES = [f"{brand} {adjective} {kind[1]}" for kind in CATALOGUE for brand in BRANDS for adjective in ADJECTIVES]
PRODUCT_URLS = [f"https://shop.example.com/p/{slug(name)}-sku-" for name in PRODUCT_NAMES]  # + the SKU's digits
