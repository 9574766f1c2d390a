from services.ingest.app import SERVICE, create_app
from shared.service import run_service

run_service(SERVICE,
            "Churnwatch ingest: the Segment-compatible tracking API and help-desk webhooks, into Kafka.",
            create_app)
