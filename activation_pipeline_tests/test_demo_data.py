"""The demo dataset generator: deterministic, referentially sound, realistic enough to test with."""

from __future__ import annotations

import re
import subprocess
import sys

import polars as pl

from activation_pipeline.demo_data import generate_customers, generate_orders, generate_products, write_demo_dataset


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    first = write_demo_dataset(tmp_path / "a", customers=300, products=80, orders=400)
    again = write_demo_dataset(tmp_path / "b", customers=300, products=80, orders=400)
    other = write_demo_dataset(tmp_path / "c", customers=300, products=80, orders=400, seed=7)
    for name in first:
        assert first[name].read_bytes() == again[name].read_bytes(), name
    assert first["customers"].read_bytes() != other["customers"].read_bytes()


def test_tables_are_consistent_with_each_other():
    customers, products = generate_customers(1000), generate_products(300)
    orders, lines = generate_orders(customers, products, 1500)
    for frame, key in ((customers, "customer_id"), (customers, "email"), (products, "sku"), (orders, "order_id")):
        assert frame[key].n_unique() == frame.height, key
    assert set(orders["customer_id"]) <= set(customers["customer_id"])
    assert set(lines["sku"]) <= set(products["sku"])
    parents = products.filter(pl.col("parent_sku").is_not_null())
    top_level = set(products.filter(pl.col("parent_sku").is_null())["sku"])
    assert parents.height > 0 and set(parents["parent_sku"]) <= top_level
    sums = lines.group_by("order_id").agg(pl.col("line_total").sum().round(2).alias("sum")).join(orders, on="order_id")
    assert (sums["sum"] - sums["total"]).abs().max() < 0.011
    span = (orders["order_date"].max() - orders["order_date"].min()).days
    assert 80 <= span <= 89
    assert products.filter((pl.col("stock_status") != "in_stock") & (pl.col("stock_qty") != 0)).is_empty()
    assert products.select("colour_id", "colour_label").unique().height == products["colour_id"].n_unique()
    assert set(products["stock_status"]) == {"in_stock", "out_of_stock", "discontinued"}


def test_a_documented_share_of_contacts_is_malformed():
    customers = generate_customers(2000)
    bad_emails = customers.filter(~pl.col("email").str.contains("@"))
    bad_phones = customers.filter(~pl.col("phone").str.contains(r"^\+\d{10,14}$"))
    assert bad_emails["customer_id"].to_list() == [i for i in range(1, 2001) if i % 200 == 7]
    assert bad_phones["customer_id"].to_list() == [i for i in range(1, 2001) if i % 200 == 13]
    assert all(re.match(r"^[a-z.0-9]+$", e.split("@")[0]) for e in customers["email"] if "@" in e)


def test_the_cli_writes_every_table_and_prints_counts(tmp_path):
    out = subprocess.run([sys.executable, "-m", "activation_pipeline.demo_data", "--out", str(tmp_path), "--customers", "50",
                          "--products", "20", "--orders", "30", "--articles", "5", "--format", "parquet"],
                         capture_output=True, text=True, check=True).stdout
    for name in ("customers", "products", "orders", "order_lines", "newsletter_subscribers", "articles"):
        assert (tmp_path / f"{name}.parquet").exists() and f"{name}.parquet" in out
    assert "customers.parquet  50 rows" in out


def test_a_million_products_generate_with_unique_skus():
    products = generate_products(1_000_000)
    assert products.height == 1_000_000 and products["sku"].n_unique() == 1_000_000
