"""SAP S/4HANA books: a credit memo request billed into the credit memo, linked to the invoice."""
