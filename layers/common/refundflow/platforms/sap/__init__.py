"""SAP S/4HANA books: a credit memo request (or, with SAP_CREDIT_DOCUMENT=customer_return, a customer return) billed
into the credit memo, linked to the invoice; customer returns' business events as returns news."""
