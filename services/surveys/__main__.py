from services.surveys.app import SERVICE, create_app
from shared.service import run_service

run_service(SERVICE,
            "Churnwatch surveys: NPS/CSAT/CES surveys and responses, published to Kafka.",
            create_app)
